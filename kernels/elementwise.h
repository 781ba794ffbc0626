// Elementwise kernels over n contiguous elements. CPU and CUDA versions share one signature.
#pragma once
#include <cstdint>

#include "kernels/dtype.h"

namespace kernels {
namespace cpu {
template <class T>
void fill(T* y, T value, int64_t n);
template <class S, class D>
void convert(const S* x, D* y, int64_t n);
template <class T>
void add(const T* a, const T* b, T* y, int64_t n);  // y = a + b
template <class T>
void scale(const T* x, compute_t<T> alpha, T* y, int64_t n);  // y = alpha * x
}  // namespace cpu
namespace cuda {
template <class T>
void fill(T* y, T value, int64_t n);
template <class S, class D>
void convert(const S* x, D* y, int64_t n);
template <class T>
void add(const T* a, const T* b, T* y, int64_t n);
template <class T>
void scale(const T* x, compute_t<T> alpha, T* y, int64_t n);
}  // namespace cuda
}  // namespace kernels

// The explicit instantiations that kernels/cpu/elementwise.cpp and kernels/cuda/elementwise.cu both compile, each
// inside its own namespace, for every storage type (kernels/dtype.h), so the two twins always provide the same set.
#define KERNELS_ELEMENTWISE_INSTANTIATE(T)               \
  template void fill<T>(T*, T, int64_t);                 \
  template void add<T>(const T*, const T*, T*, int64_t); \
  template void scale<T>(const T*, compute_t<T>, T*, int64_t);
// And the conversions between storage types (the only kernels with two type parameters), each element through
// convert_value (kernels/dtype.h).
#define KERNELS_ELEMENTWISE_INSTANTIATIONS                              \
  KERNELS_FOR_EACH_STORAGE(KERNELS_ELEMENTWISE_INSTANTIATE)             \
  template void convert<float, double>(const float*, double*, int64_t); \
  template void convert<double, float>(const double*, float*, int64_t); \
  template void convert<float, bf16>(const float*, bf16*, int64_t);     \
  template void convert<bf16, float>(const bf16*, float*, int64_t);     \
  template void convert<double, bf16>(const double*, bf16*, int64_t);   \
  template void convert<bf16, double>(const bf16*, double*, int64_t);
