// CPU batch norm: one OpenMP task per channel, sums in double. Forward statistics are two-pass (mean, then the
// sum of squared deviations), which is the exact reference the CUDA shifted sums are compared against.
#include "kernels/batch_norm.h"

#include <cmath>

namespace kernels::cpu {
namespace {
// Calls f(value_index) for every element of channel c, in memory order.
template <class F>
inline void for_channel(const BatchNormShape& s, int64_t c, F&& f) {
  for (int64_t n = 0; n < s.n; ++n) {
    const int64_t base = (n * s.c + c) * s.hw;
    for (int64_t i = 0; i < s.hw; ++i) f(base + i);
  }
}

// Channel c's affine map as the forward computes it, rounded to T: y = (x - mean) * invstd * gamma + beta.
template <class T>
struct Affine {
  double mean, scale, shift;
  Affine(const T* gamma, const T* beta, int64_t c, double mean, double invstd)
      : mean(mean), scale(invstd * (gamma ? double(gamma[c]) : 1.0)), shift(beta ? double(beta[c]) : 0.0) {}
  T operator()(T x) const { return T((double(x) - mean) * scale + shift); }
};

template <class T>
void normalise_channel(const T* x, const T* gamma, const T* beta, T* y, const BatchNormShape& s, int64_t c, double mean,
                       double invstd, bool relu) {
  const Affine<T> affine(gamma, beta, c, mean, invstd);
  if (relu) {
    for_channel(s, c, [&](int64_t k) {
      const T v = affine(x[k]);
      y[k] = v < T(0) ? T(0) : v;  // NaN passes, as relu()
    });
  } else {
    for_channel(s, c, [&](int64_t k) { y[k] = affine(x[k]); });
  }
}
}  // namespace

template <class T>
void batch_norm_forward_train(const T* x, const T* gamma, const T* beta, T* y, T* save_mean, T* save_invstd,
                              T* running_mean, T* running_var, const BatchNormShape& s, double momentum, double eps,
                              bool relu) {
  const double m = double(s.n * s.hw);
#pragma omp parallel for schedule(dynamic)
  for (int64_t c = 0; c < s.c; ++c) {
    double sum = 0;
    for_channel(s, c, [&](int64_t k) { sum += double(x[k]); });
    const double mean = sum / m;
    double sq = 0;
    for_channel(s, c, [&](int64_t k) {
      const double d = double(x[k]) - mean;
      sq += d * d;
    });
    const double var = sq / m;  // biased: what normalises
    const double invstd = 1.0 / std::sqrt(var + eps);
    save_mean[c] = T(mean);
    save_invstd[c] = T(invstd);
    if (running_mean) running_mean[c] = T((1 - momentum) * double(running_mean[c]) + momentum * mean);
    if (running_var) running_var[c] = T((1 - momentum) * double(running_var[c]) + momentum * var * m / (m - 1));
    // Normalise with the saved (rounded to T) statistics, as CUDA does and as backward will.
    normalise_channel(x, gamma, beta, y, s, c, double(save_mean[c]), double(save_invstd[c]), relu);
  }
}

template <class T>
void batch_norm_forward_eval(const T* x, const T* gamma, const T* beta, const T* running_mean, const T* running_var,
                             T* y, T* save_mean, T* save_invstd, const BatchNormShape& s, double eps, bool relu) {
#pragma omp parallel for schedule(dynamic)
  for (int64_t c = 0; c < s.c; ++c) {
    const double mean = double(running_mean[c]);
    const double invstd = 1.0 / std::sqrt(double(running_var[c]) + eps);
    save_mean[c] = T(mean);
    save_invstd[c] = T(invstd);
    normalise_channel(x, gamma, beta, y, s, c, double(save_mean[c]), double(save_invstd[c]), relu);
  }
}

template <class T>
void batch_norm_backward(const T* x, const T* gy, const T* gamma, const T* save_mean, const T* save_invstd, T* gx,
                         T* dgamma, T* dbeta, const BatchNormShape& s, bool training, bool relu, const T* beta) {
  const double m = double(s.n * s.hw);
  const bool need_sums = dgamma || dbeta || (gx && training);
#pragma omp parallel for schedule(dynamic)
  for (int64_t c = 0; c < s.c; ++c) {
    const double mean = double(save_mean[c]), invstd = double(save_invstd[c]);
    const Affine<T> affine(gamma, beta, c, mean, invstd);
    // With the fused ReLU, gy reaches BN only where the forward's output was positive.
    auto g_at = [&](int64_t k) { return !relu || affine(x[k]) > T(0) ? double(gy[k]) : 0.0; };
    double sum_gy = 0, sum_gy_xhat = 0;
    if (need_sums) {  // pass 1
      for_channel(s, c, [&](int64_t k) {
        const double g = g_at(k);
        sum_gy += g;
        sum_gy_xhat += g * (double(x[k]) - mean) * invstd;
      });
    }
    if (dgamma) dgamma[c] = T(sum_gy_xhat);
    if (dbeta) dbeta[c] = T(sum_gy);
    if (!gx) continue;
    const double k_c = (gamma ? double(gamma[c]) : 1.0) * invstd;
    if (training) {  // pass 2
      const double mean_gy = sum_gy / m, mean_gy_xhat = sum_gy_xhat / m;
      for_channel(s, c, [&](int64_t k) {
        const double xhat = (double(x[k]) - mean) * invstd;
        gx[k] = T(k_c * (g_at(k) - mean_gy - xhat * mean_gy_xhat));
      });
    } else {
      for_channel(s, c, [&](int64_t k) { gx[k] = T(k_c * g_at(k)); });
    }
  }
}

#define INSTANTIATE(T)                                                                                               \
  template void batch_norm_forward_train<T>(const T*, const T*, const T*, T*, T*, T*, T*, T*, const BatchNormShape&, \
                                            double, double, bool);                                                   \
  template void batch_norm_forward_eval<T>(const T*, const T*, const T*, const T*, const T*, T*, T*, T*,             \
                                           const BatchNormShape&, double, bool);                                     \
  template void batch_norm_backward<T>(const T*, const T*, const T*, const T*, const T*, T*, T*, T*,                 \
                                       const BatchNormShape&, bool, bool, const T*);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE

}  // namespace kernels::cpu
