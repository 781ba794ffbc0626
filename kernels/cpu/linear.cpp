#include "kernels/linear.h"

#include <vector>

namespace kernels::cpu {

template <class T>
void add_row_bias(const T* bias, T* y, int64_t rows, int64_t cols) {
#pragma omp parallel for schedule(static) if (rows * cols > (int64_t(1) << 16))
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j)
      y[r * cols + j] = to_storage<T>(to_compute(y[r * cols + j]) + to_compute(bias[j]));
}

template <class T>
void sum_rows(const T* g, T* out, int64_t rows, int64_t cols) {
  // Row by row keeps the reads contiguous; the accumulator is double so a float sum over a big batch keeps
  // its digits.
  std::vector<double> acc(cols, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) acc[j] += convert_value<double>(g[r * cols + j]);
  for (int64_t j = 0; j < cols; ++j) out[j] = convert_value<T>(acc[j]);
}

KERNELS_LINEAR_INSTANTIATIONS

}  // namespace kernels::cpu
