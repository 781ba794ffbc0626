#include "kernels/cuda/common.cuh"
#include "kernels/linear.h"

namespace kernels::cuda {
namespace {
constexpr int kBlock = 256;

template <class T>
__global__ void add_row_bias_kernel(const T* __restrict__ bias, T* __restrict__ y, int64_t total, int64_t cols) {
  CUDA_KERNEL_LOOP(i, total) y[i] = to_storage<T>(to_compute(y[i]) + to_compute(bias[i % cols]));
}

// One thread per column walks down the rows: adjacent threads read adjacent addresses, and the order of the
// sum is fixed (deterministic).
template <class T>
__global__ void sum_rows_kernel(const T* __restrict__ g, T* __restrict__ out, int64_t rows, int64_t cols) {
  CUDA_KERNEL_LOOP(j, cols) {
    compute_t<T> acc = 0;
    for (int64_t r = 0; r < rows; ++r) acc += to_compute(g[r * cols + j]);
    out[j] = to_storage<T>(acc);
  }
}
}  // namespace

template <class T>
void add_row_bias(const T* bias, T* y, int64_t rows, int64_t cols) {
  const int64_t total = rows * cols;
  if (total == 0) return;
  add_row_bias_kernel<<<grid_for(total, kBlock), kBlock, 0, stream()>>>(bias, y, total, cols);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void sum_rows(const T* g, T* out, int64_t rows, int64_t cols) {
  if (cols == 0) return;
  sum_rows_kernel<<<grid_for(cols, kBlock), kBlock, 0, stream()>>>(g, out, rows, cols);
  CUDA_CHECK_LAUNCH();
}

KERNELS_LINEAR_INSTANTIATIONS

}  // namespace kernels::cuda
