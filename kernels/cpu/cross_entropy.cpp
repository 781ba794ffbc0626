// CPU softmax cross-entropy: one OpenMP task per row (all in double), row terms summed in row order. Labels are
// checked by the caller (first_bad_label) for an immediate error; a bad one that still arrives is handled as on
// CUDA (zero gradient row, NaN loss), so the two twins agree on every input.
#include "kernels/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace kernels::cpu {

int64_t first_bad_label(const int32_t* labels, const CrossEntropyShape& s) {
  for (int64_t r = 0; r < s.n; ++r)
    if (labels[r] < 0 || labels[r] >= s.c) return r;
  return -1;
}

template <class T>
void cross_entropy_forward(const T* logits, const int32_t* labels, compute_t<T>* loss, T* grad,
                           const CrossEntropyShape& s) {
  const CrossEntropyTargets t = cross_entropy_targets(s);
  std::vector<double> row_loss(s.n);
#pragma omp parallel for schedule(static) if (s.n * s.c > 32768)
  for (int64_t r = 0; r < s.n; ++r) {
    const int32_t y = labels[r];
    if (y < 0 || y >= s.c) {
      row_loss[r] = NAN;
      if (grad) std::fill(grad + r * s.c, grad + (r + 1) * s.c, T(0));
      continue;
    }
    const T* z = logits + r * s.c;
    double mx = -INFINITY;
    for (int64_t j = 0; j < s.c; ++j) mx = std::max(mx, double(z[j]));
    double se = 0, sz = 0;
    for (int64_t j = 0; j < s.c; ++j) {
      se += std::exp(double(z[j]) - mx);
      sz += double(z[j]);
    }
    row_loss[r] = cross_entropy_row_loss(t, mx, std::log(se), sz, double(z[y]));
    if (grad) {
      T* g = grad + r * s.c;
      for (int64_t j = 0; j < s.c; ++j) g[j] = T(cross_entropy_grad(t, std::exp(double(z[j]) - mx), se, j == y));
    }
  }
  double total = 0;
  for (int64_t r = 0; r < s.n; ++r) total += row_loss[r];
  *loss = compute_t<T>(total * t.inv_n);
}

template <class T>
void cross_entropy_backward(const T* saved_grad, const compute_t<T>* gy, T* gx, int64_t count) {
  const compute_t<T> g = *gy;
#pragma omp parallel for schedule(static) if (count > 65536)
  for (int64_t i = 0; i < count; ++i) gx[i] = to_storage<T>(to_compute(saved_grad[i]) * g);
}

KERNELS_CROSS_ENTROPY_INSTANTIATIONS

}  // namespace kernels::cpu
