// CUDA softmax cross-entropy: one warp per row (rows are short: 10 classes here, 1000 at most in practice),
// math in double as on the CPU; each row's loss goes to a scratch array that one block then sums in a fixed order
// (deterministic, no atomics on the loss). A bad label sets the first bad row (atomicMin) in a device word that
// the host reads back after the kernels: the one synchronisation of this op.
#include <cmath>

#include "kernels/cross_entropy.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/runtime.h"

namespace kernels::cuda {
namespace {

constexpr int kRowsPerBlock = 8;  // warps per block in the row kernel
constexpr int kSumBlock = 256;    // multiple of 32

__device__ double warp_max(double v) {
  for (int off = 16; off > 0; off >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}
__device__ double warp_sum(double v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// blockDim.x = 32 * kRowsPerBlock; warp w of block b handles row b * kRowsPerBlock + w. A warp's lanes share their
// row, so every early return below is taken by the whole warp and the shuffles stay full-warp.
template <class T>
__global__ void rows_kernel(const T* __restrict__ logits, const int32_t* __restrict__ labels, T* __restrict__ grad,
                            double* __restrict__ row_loss, unsigned long long* bad_row, CrossEntropyShape s) {
  const int lane = threadIdx.x & 31;
  const int64_t row = (int64_t)blockIdx.x * kRowsPerBlock + (threadIdx.x >> 5);
  if (row >= s.n) return;
  const int32_t y = labels[row];
  if (y < 0 || y >= s.c) {
    if (lane == 0) {
      atomicMin(bad_row, (unsigned long long)row);
      row_loss[row] = 0;
    }
    return;
  }
  const T* z = logits + row * s.c;
  double mx = -INFINITY;
  for (int64_t j = lane; j < s.c; j += 32) mx = fmax(mx, double(z[j]));
  mx = warp_max(mx);
  double se = 0, sz = 0;
  for (int64_t j = lane; j < s.c; j += 32) {
    const double v = double(z[j]);
    se += exp(v - mx);
    sz += v;
  }
  se = warp_sum(se);
  sz = warp_sum(sz);
  const double eps = s.label_smoothing, off = eps / double(s.c), on = 1.0 - eps + off, inv_n = 1.0 / double(s.n);
  if (grad) {
    T* g = grad + row * s.c;
    for (int64_t j = lane; j < s.c; j += 32) g[j] = T((exp(double(z[j]) - mx) / se - (j == y ? on : off)) * inv_n);
  }
  if (lane == 0) row_loss[row] = mx + log(se) - (1.0 - eps) * double(z[y]) - off * sz;
}

// One block: loss = sum(row_loss) / n.
template <class T>
__global__ void sum_rows_kernel(const double* __restrict__ row_loss, int64_t n, T* loss) {
  __shared__ double partial[kSumBlock / 32];
  double v = 0;
  for (int64_t r = threadIdx.x; r < n; r += kSumBlock) v += row_loss[r];
  v = warp_sum(v);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kSumBlock / 32 ? partial[lane] : 0.0;
    v = warp_sum(v);
    if (lane == 0) *loss = T(v / double(n));
  }
}

template <class T>
__global__ void scale_by_scalar_kernel(const T* __restrict__ src, const T* __restrict__ scalar, T* __restrict__ dst,
                                       int64_t count) {
  const T g = *scalar;
  CUDA_KERNEL_LOOP(i, count) dst[i] = src[i] * g;
}

}  // namespace

template <class T>
int64_t cross_entropy_forward(const T* logits, const int32_t* labels, T* loss, T* grad, const CrossEntropyShape& s) {
  if (s.n == 0) return -1;
  // Scratch: the bad-row word, then one double per row.
  void* scratch = alloc(sizeof(unsigned long long) + sizeof(double) * s.n);
  auto* bad_row = static_cast<unsigned long long*>(scratch);
  double* row_loss = reinterpret_cast<double*>(bad_row + 1);
  unsigned long long first_bad = 0;
  try {
    CUDA_CHECK(cudaMemsetAsync(bad_row, 0xff, sizeof(unsigned long long), stream()));  // "none" = ULLONG_MAX
    const unsigned blocks = static_cast<unsigned>((s.n + kRowsPerBlock - 1) / kRowsPerBlock);
    rows_kernel<T><<<blocks, 32 * kRowsPerBlock, 0, stream()>>>(logits, labels, grad, row_loss, bad_row, s);
    CUDA_CHECK_LAUNCH();
    sum_rows_kernel<T><<<1, kSumBlock, 0, stream()>>>(row_loss, s.n, loss);
    CUDA_CHECK_LAUNCH();
    memcpy_d2h(&first_bad, bad_row, sizeof first_bad);  // synchronous: waits for both kernels
  } catch (...) {
    kernels::cuda::free(scratch);
    throw;
  }
  kernels::cuda::free(scratch);
  return first_bad == ~0ull ? -1 : static_cast<int64_t>(first_bad);
}

template <class T>
void cross_entropy_backward(const T* saved_grad, const T* gy, T* gx, int64_t count) {
  if (count == 0) return;
  scale_by_scalar_kernel<T><<<grid_for(count, 256), 256, 0, stream()>>>(saved_grad, gy, gx, count);
  CUDA_CHECK_LAUNCH();
}

KERNELS_CROSS_ENTROPY_INSTANTIATIONS

}  // namespace kernels::cuda
