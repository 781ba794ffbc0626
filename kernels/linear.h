// The two non-GEMM pieces of a fully connected layer (the GEMMs themselves are kernels/gemm.h):
// adding a bias to every row of y [rows, cols], and the bias gradient, the column sums of g [rows, cols].
#pragma once
#include <cstdint>

#include "kernels/dtype.h"

namespace kernels {
namespace cpu {
template <class T>
void add_row_bias(const T* bias, T* y, int64_t rows, int64_t cols);  // y[r, j] += bias[j]
template <class T>
void sum_rows(const T* g, T* out, int64_t rows, int64_t cols);  // out[j] = sum_r g[r, j]
}  // namespace cpu
namespace cuda {
template <class T>
void add_row_bias(const T* bias, T* y, int64_t rows, int64_t cols);
template <class T>
void sum_rows(const T* g, T* out, int64_t rows, int64_t cols);
}  // namespace cuda
}  // namespace kernels

// The explicit instantiations that kernels/cpu/linear.cpp and kernels/cuda/linear.cu both compile, each inside its own
// namespace, for every storage type (kernels/dtype.h), so the two twins always provide the same set.
#define KERNELS_LINEAR_INSTANTIATE(T)                            \
  template void add_row_bias<T>(const T*, T*, int64_t, int64_t); \
  template void sum_rows<T>(const T*, T*, int64_t, int64_t);
#define KERNELS_LINEAR_INSTANTIATIONS KERNELS_FOR_EACH_STORAGE(KERNELS_LINEAR_INSTANTIATE)
