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
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<D>(x[i]);
}

template <class T>
void add(const T* a, const T* b, T* y, int64_t n) {
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

template <class T>
void scale(const T* x, T alpha, T* y, int64_t n) {
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i) y[i] = alpha * x[i];
}

template void fill<float>(float*, float, int64_t);
template void fill<double>(double*, double, int64_t);
template void convert<float, double>(const float*, double*, int64_t);
template void convert<double, float>(const double*, float*, int64_t);
template void add<float>(const float*, const float*, float*, int64_t);
template void add<double>(const double*, const double*, double*, int64_t);
template void scale<float>(const float*, float, float*, int64_t);
template void scale<double>(const double*, double, double*, int64_t);

}  // namespace kernels::cpu
