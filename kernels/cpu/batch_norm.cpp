// CPU batch norm, sums in double. Work is split by (n, c) plane, in memory order: each thread walks a contiguous
// run of planes, so every pass streams through memory whatever H*W is (a split by channel reads one float per
// 64-byte line at 1x1; docs/benchmarks.md). Per-plane partial sums are then added over n in a fixed
// order, so results do not depend on the thread count. Forward statistics are two-pass (mean, then the sum of
// squared deviations): the exact reference the CUDA shifted sums are compared against.
// NHWC (channels last) runs the same passes over rows of C contiguous values: statistics by row_sums (a fixed
// split of the rows into blocks, added in order), the element-wise passes split by row.
#include "kernels/batch_norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/check.h"

namespace kernels::cpu {
namespace {

template <class T>
double load(T v) {
  return convert_value<double>(v);
}

// Channel c's affine map as the forward computes it, in double: y = (x - mean) * invstd * gamma + beta.
template <class T>
struct Affine {
  double mean = 0, scale = 1, shift = 0;
  Affine() = default;
  Affine(const compute_t<T>* gamma, const compute_t<T>* beta, int64_t c, double mean, double invstd)
      : mean(mean), scale(invstd * (gamma ? double(gamma[c]) : 1.0)), shift(beta ? double(beta[c]) : 0.0) {}
  double operator()(T x) const { return (load(x) - mean) * scale + shift; }
  // Whether the fused ReLU's output was positive: y as stored (rounded to T), so the mask is the forward's.
  bool positive(T x) const { return load(convert_value<T>((*this)(x))) > 0; }
};

// sums[2c], sums[2c + 1] = the totals over channel c of the pair f(plane, c, a, b) adds per plane. Threads split
// the images (N >= threads in training); inside an image the planes follow in memory order.
template <class F>
void channel_sums(const BatchNormShape& s, std::vector<double>& sums, F&& f) {
  std::vector<double> part(2 * s.n * s.c);
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t c = 0; c < s.c; ++c) {
      const int64_t p = n * s.c + c;
      double a = 0, b = 0;
      f(p, c, a, b);
      part[2 * p] = a;
      part[2 * p + 1] = b;
    }
  sums.assign(2 * s.c, 0.0);
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t c = 0; c < s.c; ++c) {
      sums[2 * c] += part[2 * (n * s.c + c)];
      sums[2 * c + 1] += part[2 * (n * s.c + c) + 1];
    }
}

// NHWC: sums[2c], sums[2c + 1] = the totals over channel c of what f(row, a, b) adds into a[0, C) and b[0, C) for
// one row of C values. The N*H*W rows are split into at most kRowBlocks contiguous blocks whatever the thread
// count, and the blocks' partial sums are added in block order, so results do not depend on the thread count.
constexpr int64_t kRowBlocks = 64;
template <class F>
void row_sums(const BatchNormShape& s, std::vector<double>& sums, F&& f) {
  const int64_t rows = s.n * s.hw, blocks = std::min(rows, kRowBlocks);
  std::vector<double> part(2 * blocks * s.c, 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    double* a = part.data() + 2 * b * s.c;
    for (int64_t r = rows * b / blocks; r < rows * (b + 1) / blocks; ++r) f(r, a, a + s.c);
  }
  sums.assign(2 * s.c, 0.0);
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t c = 0; c < s.c; ++c) {
      sums[2 * c] += part[2 * b * s.c + c];
      sums[2 * c + 1] += part[2 * b * s.c + s.c + c];
    }
}

// sum over i < len of (f(i), g(i)) with four independent accumulators each: one chain of dependent double adds
// (4 cycles each) held a pass to ~1 element per 4 cycles, far under memory speed.
template <class F, class G>
void sum2(int64_t len, F&& f, G&& g, double& a, double& b) {
  double a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
  int64_t i = 0;
  for (; i + 4 <= len; i += 4) {
    a0 += f(i), a1 += f(i + 1), a2 += f(i + 2), a3 += f(i + 3);
    b0 += g(i), b1 += g(i + 1), b2 += g(i + 2), b3 += g(i + 3);
  }
  for (; i < len; ++i) a0 += f(i), b0 += g(i);
  a += (a0 + a1) + (a2 + a3);
  b += (b0 + b1) + (b2 + b3);
}

// y = affine(x) (+ r), then max(y, 0) with relu, rounded to T once.
template <class T>
void normalise(const T* x, const compute_t<T>* gamma, const compute_t<T>* beta, T* y, const BatchNormShape& s,
               const compute_t<T>* mean, const compute_t<T>* invstd, bool relu, const T* residual) {
  std::vector<Affine<T>> affine(s.c);
  for (int64_t c = 0; c < s.c; ++c) affine[c] = Affine<T>(gamma, beta, c, double(mean[c]), double(invstd[c]));
  if (s.layout == Layout::nhwc) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < s.n * s.hw; ++r)
      for (int64_t c = 0; c < s.c; ++c) {
        const int64_t e = r * s.c + c;
        double v = affine[c](x[e]);
        if (residual) v += load(residual[e]);
        y[e] = convert_value<T>(relu && v < 0 ? 0.0 : v);
      }
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t c = 0; c < s.c; ++c) {
      const Affine<T> a = affine[c];
      const int64_t off = (n * s.c + c) * s.hw;
      const T *xp = x + off, *rp = residual ? residual + off : nullptr;
      T* yp = y + off;
      for (int64_t i = 0; i < s.hw; ++i) {
        double v = a(xp[i]);
        if (rp) v += load(rp[i]);
        yp[i] = convert_value<T>(relu && v < 0 ? 0.0 : v);  // NaN passes, as relu()
      }
    }
}

}  // namespace

template <class T>
void batch_norm_forward_train(const T* x, const compute_t<T>* gamma, const compute_t<T>* beta, T* y,
                              compute_t<T>* save_mean, compute_t<T>* save_invstd, compute_t<T>* running_mean,
                              compute_t<T>* running_var, const BatchNormShape& s, double momentum, double eps,
                              bool relu, const T* residual) {
  using C = compute_t<T>;
  const double m = double(s.n * s.hw);
  std::vector<double> sums, sq;
  auto zero = [](int64_t) { return 0.0; };
  std::vector<double> mean(s.c);
  if (s.layout == Layout::nhwc) {
    row_sums(s, sums, [&](int64_t r, double* a, double*) {
      const T* xr = x + r * s.c;
      for (int64_t c = 0; c < s.c; ++c) a[c] += load(xr[c]);
    });
    for (int64_t c = 0; c < s.c; ++c) mean[c] = sums[2 * c] / m;
    row_sums(s, sq, [&](int64_t r, double* a, double*) {
      const T* xr = x + r * s.c;
      for (int64_t c = 0; c < s.c; ++c) {
        const double d = load(xr[c]) - mean[c];
        a[c] += d * d;
      }
    });
  } else {
    channel_sums(s, sums, [&](int64_t p, int64_t, double& a, double& b) {
      const T* xp = x + p * s.hw;
      sum2(
          s.hw, [&](int64_t i) { return load(xp[i]); }, zero, a, b);
    });
    for (int64_t c = 0; c < s.c; ++c) mean[c] = sums[2 * c] / m;
    channel_sums(s, sq, [&](int64_t p, int64_t c, double& a, double& b) {
      const T* xp = x + p * s.hw;
      const double mu = mean[c];
      sum2(
          s.hw,
          [&](int64_t i) {
            const double d = load(xp[i]) - mu;
            return d * d;
          },
          zero, a, b);
    });
  }
  for (int64_t c = 0; c < s.c; ++c) {
    const double var = sq[2 * c] / m;  // biased: what normalises
    save_mean[c] = C(mean[c]);
    save_invstd[c] = C(batch_norm_invstd(var, eps));
    batch_norm_update_running(running_mean, running_var, c, mean[c], var, m, momentum);
  }
  // Normalise with the saved (rounded to C) statistics, as CUDA does and as backward will.
  normalise(x, gamma, beta, y, s, save_mean, save_invstd, relu, residual);
}

template <class T>
void batch_norm_forward_eval(const T* x, const compute_t<T>* gamma, const compute_t<T>* beta,
                             const compute_t<T>* running_mean, const compute_t<T>* running_var, T* y,
                             compute_t<T>* save_mean, compute_t<T>* save_invstd, const BatchNormShape& s, double eps,
                             bool relu, const T* residual) {
  for (int64_t c = 0; c < s.c; ++c) {
    save_mean[c] = running_mean[c];
    save_invstd[c] = compute_t<T>(batch_norm_invstd(double(running_var[c]), eps));
  }
  normalise(x, gamma, beta, y, s, save_mean, save_invstd, relu, residual);
}

template <class T>
void batch_norm_backward(const T* x, const T* gy, const compute_t<T>* gamma, const compute_t<T>* save_mean,
                         const compute_t<T>* save_invstd, T* gx, compute_t<T>* dgamma, compute_t<T>* dbeta,
                         const BatchNormShape& s, bool training, bool relu, const compute_t<T>* beta, const T* y,
                         T* gr) {
  using C = compute_t<T>;
  const double m = double(s.n * s.hw);
  const bool need_sums = dgamma || dbeta || (gx && training);
  KERNELS_CHECK(!(relu && gr) || y, "batch_norm_backward: the residual's gradient with relu needs the output y");
  if (gr) {  // the residual's gradient, gy masked by the forward's y > 0; the rest runs on it, unmasked
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < s.n * s.c; ++p)
      for (int64_t i = p * s.hw; i < (p + 1) * s.hw; ++i)
        gr[i] = !relu || load(y[i]) > 0 ? gy[i] : convert_value<T>(0.0);
    gy = gr;
    relu = false;
  }
  std::vector<Affine<T>> affine(s.c);
  for (int64_t c = 0; c < s.c; ++c) affine[c] = Affine<T>(gamma, beta, c, double(save_mean[c]), double(save_invstd[c]));
  // With the fused ReLU, gy reaches BN only where the forward's output was positive.
  auto g_at = [&](const Affine<T>& a, T xv, T gv) { return !relu || a.positive(xv) ? load(gv) : 0.0; };
  std::vector<double> sums(2 * s.c, 0.0);
  if (need_sums && s.layout == Layout::nhwc) {  // pass 1 over rows
    row_sums(s, sums, [&](int64_t r, double* a, double* b) {
      const T *xr = x + r * s.c, *gr_ = gy + r * s.c;
      for (int64_t c = 0; c < s.c; ++c) {
        const Affine<T>& af = affine[c];
        const double g = g_at(af, xr[c], gr_[c]);
        a[c] += g;
        b[c] += g * (load(xr[c]) - af.mean) * double(save_invstd[c]);
      }
    });
  } else if (need_sums) {  // pass 1: sum_gy, sum_gy_xhat
    channel_sums(s, sums, [&](int64_t p, int64_t c, double& a, double& b) {
      const T *xp = x + p * s.hw, *gp = gy + p * s.hw;
      const Affine<T>& af = affine[c];
      const double mean = af.mean, invstd = double(save_invstd[c]);
      sum2(
          s.hw, [&](int64_t i) { return g_at(af, xp[i], gp[i]); },
          [&](int64_t i) { return g_at(af, xp[i], gp[i]) * (load(xp[i]) - mean) * invstd; }, a, b);
    });
  }
  for (int64_t c = 0; c < s.c; ++c) {
    if (dgamma) dgamma[c] = C(sums[2 * c + 1]);
    if (dbeta) dbeta[c] = C(sums[2 * c]);
  }
  if (!gx) return;
  if (s.layout == Layout::nhwc) {  // pass 2 over rows, the per-channel factors computed once
    std::vector<double> k(s.c), mean_gy(s.c, 0.0), coef(s.c, 0.0);
    for (int64_t c = 0; c < s.c; ++c) {
      const double invstd = double(save_invstd[c]);
      k[c] = (gamma ? double(gamma[c]) : 1.0) * invstd;
      if (training) mean_gy[c] = sums[2 * c] / m, coef[c] = invstd * (sums[2 * c + 1] / m);
    }
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < s.n * s.hw; ++r)
      for (int64_t c = 0; c < s.c; ++c) {
        const int64_t e = r * s.c + c;
        const Affine<T>& af = affine[c];
        const double g = g_at(af, x[e], gy[e]);
        gx[e] = convert_value<T>(training ? batch_norm_input_grad(k[c], g, mean_gy[c], load(x[e]) - af.mean, coef[c])
                                          : k[c] * g);
      }
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t c = 0; c < s.c; ++c) {  // pass 2
      const int64_t p = n * s.c + c;
      const Affine<T>& af = affine[c];
      const double invstd = double(save_invstd[c]);
      const double k_c = (gamma ? double(gamma[c]) : 1.0) * invstd;
      const T *xp = x + p * s.hw, *gp = gy + p * s.hw;
      T* op = gx + p * s.hw;
      if (training) {
        const double mean_gy = sums[2 * c] / m, coef = invstd * (sums[2 * c + 1] / m);
        for (int64_t i = 0; i < s.hw; ++i)
          op[i] = convert_value<T>(
              batch_norm_input_grad(k_c, g_at(af, xp[i], gp[i]), mean_gy, load(xp[i]) - af.mean, coef));
      } else {
        for (int64_t i = 0; i < s.hw; ++i) op[i] = convert_value<T>(k_c * g_at(af, xp[i], gp[i]));
      }
    }
}

KERNELS_BATCH_NORM_INSTANTIATIONS

}  // namespace kernels::cpu
