// CUDA softmax cross-entropy: one warp per row (rows are short: 10 classes here, 1000 at most in practice),
// math in double as on the CPU; each row's loss goes to a scratch array that one block then sums in a fixed order
// (deterministic, no atomics on the loss). A bad label sets the call's first bad row (atomicMin) in a scratch word;
// the summing block copies it into the device's label-error record, which the host reads only when it asks
// (take_label_error): the forward itself never waits for the device.
#include <cmath>

#include "kernels/cross_entropy.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/runtime.h"

namespace kernels::cuda {
namespace {

// The first bad label since the last take_label_error(); zero (claimed == 0) when there is none. A module global
// lives on the device it was loaded on: the process's one device (runtime.h, use_device).
struct LabelRecord {
  unsigned int claimed;
  int label;
  long long row, n, c;
  unsigned long long call;
};
__device__ LabelRecord g_label_record;

// Non-empty forward calls since the last take_label_error(), so that the error can say which call it was. Counted
// on the device, by the summing kernel: a replayed CUDA graph (engine/step_graph.h) runs that kernel again, where a
// host counter would have been read once, at capture.
__device__ unsigned long long g_calls;

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
  if (y < 0 || y >= s.c) {  // as the CPU twin: zero gradient row, NaN loss
    if (grad)
      for (int64_t j = lane; j < s.c; j += 32) grad[row * s.c + j] = T(0);
    if (lane == 0) {
      atomicMin(bad_row, (unsigned long long)row);
      row_loss[row] = NAN;
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
  const CrossEntropyTargets t = cross_entropy_targets(s);
  if (grad) {
    T* g = grad + row * s.c;
    for (int64_t j = lane; j < s.c; j += 32) g[j] = T(cross_entropy_grad(t, exp(double(z[j]) - mx), se, j == y));
  }
  if (lane == 0) row_loss[row] = cross_entropy_row_loss(t, mx, log(se), sz, double(z[y]));
}

// One block: loss = sum(row_loss) / n; thread 0 also files the call's first bad row (if any) in the record, unless
// an earlier call already did.
template <class C>  // the compute type: the loss is never rounded to the storage type
__global__ void sum_rows_kernel(const double* __restrict__ row_loss, const unsigned long long* bad_row,
                                const int32_t* __restrict__ labels, CrossEntropyShape s, C* loss) {
  const int64_t n = s.n;
  const unsigned long long call = threadIdx.x == 0 ? ++g_calls : 0;  // one block: thread 0 alone counts
  if (threadIdx.x == 0 && *bad_row != ~0ull && atomicCAS(&g_label_record.claimed, 0u, 1u) == 0u) {
    const long long row = (long long)*bad_row;
    g_label_record.label = labels[row];
    g_label_record.row = row;
    g_label_record.n = s.n;
    g_label_record.c = s.c;
    g_label_record.call = call;
  }
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
    if (lane == 0) *loss = C(v / double(n));
  }
}

template <class T>
__global__ void scale_by_scalar_kernel(const T* __restrict__ src, const compute_t<T>* __restrict__ scalar,
                                       T* __restrict__ dst, int64_t count) {
  const compute_t<T> g = *scalar;
  CUDA_KERNEL_LOOP(i, count) dst[i] = to_storage<T>(to_compute(src[i]) * g);
}

}  // namespace

template <class T>
void cross_entropy_forward(const T* logits, const int32_t* labels, compute_t<T>* loss, T* grad,
                           const CrossEntropyShape& s) {
  if (s.n == 0) return;
  // Scratch: the bad-row word, then one double per row (both 8 bytes). Released at once: later work on the
  // stream is what may reuse it, after these kernels.
  DeviceBuffer<double> scratch(static_cast<std::size_t>(s.n) + 1);
  auto* bad_row = reinterpret_cast<unsigned long long*>(scratch.get());
  double* row_loss = scratch.get() + 1;
  CUDA_CHECK(cudaMemsetAsync(bad_row, 0xff, sizeof(unsigned long long), stream()));  // "none" = ULLONG_MAX
  const unsigned blocks = static_cast<unsigned>((s.n + kRowsPerBlock - 1) / kRowsPerBlock);
  rows_kernel<T><<<blocks, 32 * kRowsPerBlock, 0, stream()>>>(logits, labels, grad, row_loss, bad_row, s);
  CUDA_CHECK_LAUNCH();
  sum_rows_kernel<compute_t<T>><<<1, kSumBlock, 0, stream()>>>(row_loss, bad_row, labels, s, loss);
  CUDA_CHECK_LAUNCH();
}

LabelError take_label_error() {
  bind_thread();
  LabelRecord rec{};
  CUDA_CHECK(cudaMemcpyFromSymbolAsync(&rec, g_label_record, sizeof rec, 0, cudaMemcpyDeviceToHost, stream()));
  CUDA_CHECK(cudaStreamSynchronize(stream()));  // every forward queued so far has filed its label
  static const unsigned long long kZero = 0;    // static: the asynchronous copy may read it after this returns
  CUDA_CHECK(cudaMemcpyToSymbolAsync(g_calls, &kZero, sizeof kZero, 0, cudaMemcpyHostToDevice, stream()));
  LabelError e;
  if (!rec.claimed) return e;
  static const LabelRecord kNone{};  // static: the asynchronous copy may read it after this returns
  CUDA_CHECK(cudaMemcpyToSymbolAsync(g_label_record, &kNone, sizeof kNone, 0, cudaMemcpyHostToDevice, stream()));
  e.found = true;
  e.row = rec.row;
  e.label = rec.label;
  e.shape.n = rec.n;
  e.shape.c = rec.c;
  e.call = static_cast<int64_t>(rec.call);
  return e;
}

template <class T>
void cross_entropy_backward(const T* saved_grad, const compute_t<T>* gy, T* gx, int64_t count) {
  if (count == 0) return;
  scale_by_scalar_kernel<T><<<grid_for(count, 256), 256, 0, stream()>>>(saved_grad, gy, gx, count);
  CUDA_CHECK_LAUNCH();
}

KERNELS_CROSS_ENTROPY_INSTANTIATIONS

}  // namespace kernels::cuda
