#include "kernels/cuda/vectorized.cuh"
#include "kernels/relu.h"

namespace kernels::cuda {
namespace {
struct ReluForward {
  template <class T>
  __device__ T operator()(T x) const {
    return to_compute(x) < 0 ? to_storage<T>(0) : x;  // NaN propagates, as in PyTorch
  }
};
struct ReluBackward {
  template <class T>
  __device__ T operator()(T x, T gy) const {
    return to_compute(x) > 0 ? gy : to_storage<T>(0);
  }
};
}  // namespace

template <class T>
void relu_forward(const T* x, T* y, int64_t n) {
  map1(ReluForward{}, x, y, n);
}
template <class T>
void relu_backward(const T* x, const T* gy, T* gx, int64_t n) {
  map2(ReluBackward{}, x, gy, gx, n);
}

KERNELS_RELU_INSTANTIATIONS

}  // namespace kernels::cuda
