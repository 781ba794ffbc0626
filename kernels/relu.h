// ReLU: y = max(x, 0) with NaN passed through (so a diverging net shows in the loss, as in PyTorch);
// backward gx = gy where x > 0 (the subgradient at 0 is 0, as in PyTorch).
#pragma once
#include <cstdint>

#include "kernels/dtype.h"

namespace kernels {
namespace cpu {
template <class T>
void relu_forward(const T* x, T* y, int64_t n);
template <class T>
void relu_backward(const T* x, const T* gy, T* gx, int64_t n);
}  // namespace cpu
namespace cuda {
template <class T>
void relu_forward(const T* x, T* y, int64_t n);
template <class T>
void relu_backward(const T* x, const T* gy, T* gx, int64_t n);
}  // namespace cuda
}  // namespace kernels

// The explicit instantiations that kernels/cpu/relu.cpp and kernels/cuda/relu.cu both compile, each inside its own
// namespace, for every storage type (kernels/dtype.h), so the two twins always provide the same set.
#define KERNELS_RELU_INSTANTIATE(T)                     \
  template void relu_forward<T>(const T*, T*, int64_t); \
  template void relu_backward<T>(const T*, const T*, T*, int64_t);
#define KERNELS_RELU_INSTANTIATIONS KERNELS_FOR_EACH_STORAGE(KERNELS_RELU_INSTANTIATE)
