#include "kernels/relu.h"

namespace kernels::cpu {

template <class T>
void relu_forward(const T* x, T* y, int64_t n) {
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i) y[i] = to_compute(x[i]) < 0 ? to_storage<T>(0) : x[i];  // NaN propagates, as PyTorch
}

template <class T>
void relu_backward(const T* x, const T* gy, T* gx, int64_t n) {
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const T g = gy[i];  // loaded unconditionally so the select vectorises (a conditional load became a branch)
    gx[i] = to_compute(x[i]) > 0 ? g : to_storage<T>(0);
  }
}

KERNELS_RELU_INSTANTIATIONS

}  // namespace kernels::cpu
