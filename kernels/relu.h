// ReLU: y = max(x, 0) with NaN passed through (so a diverging net shows in the loss, as in PyTorch);
// backward gx = gy where x > 0 (the subgradient at 0 is 0, as in PyTorch).
#pragma once
#include <cstdint>

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
