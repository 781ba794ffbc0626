#include "kernels/cuda/common.cuh"
#include "kernels/relu.h"

namespace kernels::cuda {
namespace {
constexpr int kBlock = 256;
template <class T>
__global__ void relu_forward_kernel(const T* x, T* y, int64_t n) {
  CUDA_KERNEL_LOOP(i, n) y[i] = x[i] < T(0) ? T(0) : x[i];  // NaN propagates, as in PyTorch
}
template <class T>
__global__ void relu_backward_kernel(const T* x, const T* gy, T* gx, int64_t n) {
  CUDA_KERNEL_LOOP(i, n) gx[i] = x[i] > T(0) ? gy[i] : T(0);
}
}  // namespace

template <class T>
void relu_forward(const T* x, T* y, int64_t n) {
  if (n == 0) return;
  relu_forward_kernel<<<grid_for(n, kBlock), kBlock, 0, stream()>>>(x, y, n);
  CUDA_CHECK_LAUNCH();
}
template <class T>
void relu_backward(const T* x, const T* gy, T* gx, int64_t n) {
  if (n == 0) return;
  relu_backward_kernel<<<grid_for(n, kBlock), kBlock, 0, stream()>>>(x, gy, gx, n);
  CUDA_CHECK_LAUNCH();
}

template void relu_forward<float>(const float*, float*, int64_t);
template void relu_forward<double>(const double*, double*, int64_t);
template void relu_backward<float>(const float*, const float*, float*, int64_t);
template void relu_backward<double>(const double*, const double*, double*, int64_t);

}  // namespace kernels::cuda
