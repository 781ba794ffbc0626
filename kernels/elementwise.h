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
