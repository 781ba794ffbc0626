// The two non-GEMM pieces of a fully connected layer (the GEMMs themselves are kernels/gemm.h):
// adding a bias to every row of y [rows, cols], and the bias gradient, the column sums of g [rows, cols].
#pragma once
#include <cstdint>

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
