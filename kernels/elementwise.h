// Elementwise kernels over n contiguous elements. CPU and CUDA versions share one signature.
#pragma once
#include <cstdint>

namespace kernels {
namespace cpu {
template <class T>
void fill(T* y, T value, int64_t n);
template <class S, class D>
void convert(const S* x, D* y, int64_t n);
template <class T>
void add(const T* a, const T* b, T* y, int64_t n);  // y = a + b
template <class T>
void scale(const T* x, T alpha, T* y, int64_t n);  // y = alpha * x
}  // namespace cpu
namespace cuda {
template <class T>
void fill(T* y, T value, int64_t n);
template <class S, class D>
void convert(const S* x, D* y, int64_t n);
template <class T>
void add(const T* a, const T* b, T* y, int64_t n);
template <class T>
void scale(const T* x, T alpha, T* y, int64_t n);
}  // namespace cuda
}  // namespace kernels

// The explicit instantiations that kernels/cpu/elementwise.cpp and kernels/cuda/elementwise.cu both compile, each
// inside its own namespace, so the two twins always provide the same set.
#define KERNELS_ELEMENTWISE_INSTANTIATIONS                                   \
  template void fill<float>(float*, float, int64_t);                         \
  template void fill<double>(double*, double, int64_t);                      \
  template void convert<float, double>(const float*, double*, int64_t);      \
  template void convert<double, float>(const double*, float*, int64_t);      \
  template void add<float>(const float*, const float*, float*, int64_t);     \
  template void add<double>(const double*, const double*, double*, int64_t); \
  template void scale<float>(const float*, float, float*, int64_t);          \
  template void scale<double>(const double*, double, double*, int64_t);
