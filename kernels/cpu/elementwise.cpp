#include "kernels/elementwise.h"

namespace kernels::cpu {

template <class T>
void fill(T* y, T value, int64_t n) {
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i) y[i] = value;
}

template <class S, class D>
void convert(const S* x, D* y, int64_t n) {
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i) y[i] = convert_value<D>(x[i]);
}

template <class T>
void add(const T* a, const T* b, T* y, int64_t n) {
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i) y[i] = to_storage<T>(to_compute(a[i]) + to_compute(b[i]));
}

template <class T>
void scale(const T* x, compute_t<T> alpha, T* y, int64_t n) {
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i) y[i] = to_storage<T>(alpha * to_compute(x[i]));
}

KERNELS_ELEMENTWISE_INSTANTIATIONS

}  // namespace kernels::cpu
