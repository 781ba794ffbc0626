// The op table: one OpInfo per op front-end (engine/ops), each run through the battery of tests/ops/op_table.h.
// Every reference here is a naive loop in double written from the op's definition (PyTorch's semantics), not the
// engine's kernel. Hand-computed edge cases stay in the per-op files (tests/ops/test_<op>.cpp).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "engine/ops.h"
#include "tests/ops/conv_case.h"
#include "tests/ops/op_table.h"

using namespace engine;
using testing::optable::Make;
using testing::optable::OpCase;
using testing::optable::OpInfo;
using testing::optable::Tensors;
using testing::optable::Values;

namespace {

Tensor f64(const std::vector<double>& v, const Shape& s) { return Tensor::from_vector(v, s, DType::f64); }
Tensor randn64(const Shape& s, uint64_t seed) {
  Generator g(seed);
  return randn(s, DType::f64, Device::cpu(), g);
}
// A shuffled ramp (i - n/2 + 0.5) / 10: distinct values 0.1 apart, none within 0.05 of 0, so ReLU's kink and
// max-pool ties stay far from the finite-difference step (1e-6), and float32 keeps them distinct.
Tensor distinct(const Shape& s, uint64_t seed) {
  std::vector<double> v(numel_of(s));
  std::iota(v.begin(), v.end(), 0.0);
  std::shuffle(v.begin(), v.end(), std::mt19937_64(seed));
  for (double& e : v) e = (e - double(v.size()) / 2 + 0.5) / 10;
  return f64(v, s);
}
double relu_ref(double x) { return x < 0 ? 0.0 : x; }  // NaN passes
Tensor int_tensor(const Make& m) { return Tensor::from_vector({0, 1, 2, 3}, {2, 2}, DType::i32, m.device); }

Conv2dParams with_layout(Conv2dParams p, Layout layout) {
  p.layout = layout;
  return p;
}

// ---- add, scale, relu, flatten ----
OpInfo add_entry() {
  OpInfo op{"add", {}, {}};
  for (const Shape& s : {Shape{2, 3, 4}, Shape{1}, Shape{3, 1, 5, 2}}) {
    op.cases.push_back({shape_str(s),
                        {randn64(s, 1), randn64(s, 2)},
                        {0, 1},
                        1,
                        [](const Tensors& in) { return Tensors{add(in[0], in[1])}; },
                        [s](const Values& v) {
                          std::vector<double> y(v[0].size());
                          for (size_t i = 0; i < y.size(); ++i) y[i] = v[0][i] + v[1][i];
                          return Tensors{f64(y, s)};
                        }});
  }
  op.bad_calls = {[](const Make& m) {
                    add(m({2, 3}), m({3, 2}));
                  },
                  [](const Make& m) { add(m({2}), m.other_dtype({2})); },
                  [](const Make& m) { add(int_tensor(m), int_tensor(m)); }};
  return op;
}

OpInfo scale_entry() {
  OpInfo op{"scale", {}, {}};
  for (const auto& [s, alpha] :
       {std::pair{Shape{2, 3, 4}, 0.3}, std::pair{Shape{5}, -2.0}, std::pair{Shape{3, 3}, 0.0}}) {
    op.cases.push_back({cat(shape_str(s), " alpha ", alpha),
                        {randn64(s, 3)},
                        {0},
                        1,
                        [alpha = alpha](const Tensors& in) { return Tensors{scale(in[0], alpha)}; },
                        [s = s, alpha = alpha](const Values& v) {
                          std::vector<double> y(v[0].size());
                          for (size_t i = 0; i < y.size(); ++i) y[i] = alpha * v[0][i];  // 0 * NaN is NaN
                          return Tensors{f64(y, s)};
                        }});
  }
  op.bad_calls = {[](const Make&) { scale(Tensor(), 2.0); }, [](const Make& m) { scale(int_tensor(m), 2.0); }};
  return op;
}

OpInfo relu_entry() {
  OpInfo op{"relu", {}, {}};
  const std::vector<std::pair<std::string, Tensor>> inputs = {
      {"[2, 3] by hand", f64({-1.5, -0.3, 0.2, 0.7, 2.0, -2.2}, {2, 3})},
      {"[2, 3, 4, 5] distinct", distinct({2, 3, 4, 5}, 4)}};
  for (const auto& [name, x] : inputs) {
    op.cases.push_back({name,
                        {x},
                        {0},
                        1,
                        [](const Tensors& in) { return Tensors{relu(in[0])}; },
                        [s = x.shape()](const Values& v) {
                          std::vector<double> y(v[0].size());
                          for (size_t i = 0; i < y.size(); ++i) y[i] = relu_ref(v[0][i]);
                          return Tensors{f64(y, s)};
                        }});
  }
  op.bad_calls = {[](const Make&) { relu(Tensor()); }, [](const Make& m) { relu(int_tensor(m)); }};
  return op;
}

OpInfo flatten_entry() {
  OpInfo op{"flatten", {}, {}};
  for (const auto& [s, out] : {std::pair{Shape{2, 3, 4, 5}, Shape{2, 60}}, std::pair{Shape{3, 1}, Shape{3, 1}},
                               std::pair{Shape{4}, Shape{4, 1}}}) {
    op.cases.push_back({shape_str(s),
                        {randn64(s, 5)},
                        {0},
                        1,
                        [](const Tensors& in) { return Tensors{flatten(in[0])}; },
                        [out = out](const Values& v) { return Tensors{f64(v[0], out)}; }});
  }
  op.bad_calls = {[](const Make& m) { flatten(m({})); }, [](const Make&) { flatten(Tensor()); }};
  return op;
}

// ---- linear: y[n, o] = b[o] + sum_i x[n, i] w[o, i] ----
OpInfo linear_entry() {
  OpInfo op{"linear", {}, {}};
  for (const auto& [n, in_f, out_f, bias] :
       {std::tuple{4, 6, 3, true}, std::tuple{4, 6, 3, false}, std::tuple{1, 6, 3, true}, std::tuple{5, 17, 9, true}}) {
    Tensors inputs = {randn64({n, in_f}, 6), randn64({out_f, in_f}, 7)};
    if (bias) inputs.push_back(randn64({out_f}, 8));
    op.cases.push_back(
        {cat("x [", n, ", ", in_f, "], ", out_f, " out", bias ? ", bias" : ", no bias"), inputs,
         bias ? std::vector<size_t>{0, 1, 2} : std::vector<size_t>{0, 1}, in_f + 1,
         [](const Tensors& in) { return Tensors{linear(in[0], in[1], in.size() > 2 ? in[2] : Tensor())}; },
         [n = n, in_f = in_f, out_f = out_f](const Values& v) {
           std::vector<double> y(n * out_f);
           for (int64_t i = 0; i < n; ++i)
             for (int64_t o = 0; o < out_f; ++o) {
               double s = v.size() > 2 ? v[2][o] : 0.0;
               for (int64_t j = 0; j < in_f; ++j) s += v[0][i * in_f + j] * v[1][o * in_f + j];
               y[i * out_f + o] = s;
             }
           return Tensors{f64(y, {n, out_f})};
         }});
    op.cases.back().k_grad = std::max(out_f, n);  // dx; dw and db
  }
  op.bad_calls = {[](const Make& m) {
                    linear(m({2, 5}), m({3, 4}), Tensor());
                  },
                  [](const Make& m) {
                    linear(m({2, 3, 4}), m({3, 4}), Tensor());
                  },
                  [](const Make& m) {
                    linear(m({2, 4}), m({3, 4}), m({4}));
                  }};
  return op;
}

// ---- conv2d: y[n, o, i, j] = b[o] + sum_{c, a, b} x[n, c, i*sh - ph + a, j*sw - pw + b] w[o, c, a, b] ----
OpInfo conv2d_entry(Layout layout = Layout::nchw) {
  using testing::params;
  const std::vector<testing::ConvCase> cases = {
      {1, 2, 7, 9, 3, 1, 1, params(1, 1, 0, 0), true},   // pointwise
      {2, 3, 9, 7, 2, 1, 1, params(2, 2, 0, 0), true},   // strided 1x1 (the ResNet projection shortcut)
      {3, 2, 7, 9, 3, 3, 3, params(1, 1, 1, 1), true},   // 3x3 same padding
      {1, 2, 7, 9, 3, 3, 3, params(2, 2, 1, 1), false},  // 3x3 stride 2, no bias
      {3, 2, 7, 9, 3, 3, 1, params(2, 1, 1, 0), true},   // asymmetric kernel, stride and padding
      {1, 2, 7, 9, 3, 7, 7, params(2, 2, 3, 3), true},   // the 7x7 stem
      {2, 3, 2, 2, 4, 3, 3, params(1, 1, 1, 1), false},  // 2x2 map, pad 1: every output reads the whole plane
      {3, 2, 1, 1, 3, 3, 3, params(1, 1, 1, 1), true},   // 1x1 map: only the centre tap is live
  };
  OpInfo op{"conv2d", {}, {}};
  uint64_t seed = 10;
  for (const testing::ConvCase& k : cases) {
    Tensors inputs = {randn64({k.n, k.c, k.h, k.w}, seed++), randn64({k.oc, k.c, k.kh, k.kw}, seed++)};
    if (k.bias) inputs.push_back(randn64({k.oc}, seed++));
    op.cases.push_back(
        {testing::describe(k), inputs, k.bias ? std::vector<size_t>{0, 1, 2} : std::vector<size_t>{0, 1},
         k.c * k.kh * k.kw + 1,
         [p = with_layout(k.p, layout)](const Tensors& in) {
           return Tensors{conv2d(in[0], in[1], in.size() > 2 ? in[2] : Tensor(), p)};
         },
         [k](const Values& v) {
           const int64_t oh = (k.h + 2 * k.p.pad_h - k.kh) / k.p.stride_h + 1;
           const int64_t ow = (k.w + 2 * k.p.pad_w - k.kw) / k.p.stride_w + 1;
           std::vector<double> y(k.n * k.oc * oh * ow);
           for (int64_t n = 0; n < k.n; ++n)
             for (int64_t o = 0; o < k.oc; ++o)
               for (int64_t i = 0; i < oh; ++i)
                 for (int64_t j = 0; j < ow; ++j) {
                   double s = k.bias ? v[2][o] : 0.0;
                   for (int64_t c = 0; c < k.c; ++c)
                     for (int64_t a = 0; a < k.kh; ++a)
                       for (int64_t b = 0; b < k.kw; ++b) {
                         const int64_t ih = i * k.p.stride_h - k.p.pad_h + a, iw = j * k.p.stride_w - k.p.pad_w + b;
                         if (ih < 0 || ih >= k.h || iw < 0 || iw >= k.w) continue;
                         s += v[0][((n * k.c + c) * k.h + ih) * k.w + iw] * v[1][((o * k.c + c) * k.kh + a) * k.kw + b];
                       }
                   y[((n * k.oc + o) * oh + i) * ow + j] = s;
                 }
           return Tensors{f64(y, {k.n, k.oc, oh, ow})};
         }});
    // The weight's NaN goes to the centre tap, which reads the image at every output in these cases. A tap over
    // the zero padding is left out: 0 * NaN gives NaN on the im2col path and not on the dense or cropped paths
    // (kernels/cpu/conv.cpp drops taps that only read padding), and PyTorch does not define which.
    op.cases.back().nan_at = {0, (k.kh / 2) * k.kw + k.kw / 2, 0};
    const int64_t oh = (k.h + 2 * k.p.pad_h - k.kh) / k.p.stride_h + 1,
                  ow = (k.w + 2 * k.p.pad_w - k.kw) / k.p.stride_w + 1;
    op.cases.back().k_grad = std::max(k.oc * k.kh * k.kw, k.n * oh * ow);  // dx; dw and db
  }
  op.bad_calls = {[](const Make& m) {
                    conv2d(m({2, 3, 8, 8}), m({4, 1, 3, 3}), Tensor(), Conv2dParams{});
                  },
                  [](const Make& m) {
                    conv2d(m({3, 8, 8}), m({4, 3, 3, 3}), Tensor(), Conv2dParams{});
                  },
                  [](const Make& m) {
                    conv2d(m({2, 3, 8, 8}), m({4, 3, 3, 3}), m({5}), Conv2dParams{});
                  }};
  return op;
}

// ---- batch_norm2d, batch_norm2d_relu, batch_norm2d_add_relu: inputs x, gamma, beta, running_mean, running_var
// (and the residual) ----
// training: (x - mean) / sqrt(var + eps) * gamma + beta with the batch mean and biased variance per channel;
// running = 0.9 running + 0.1 stat (unbiased variance). eval: the running statistics, which stay as they are.
// relu: then max(y, 0); add_relu: max(y + residual, 0).
enum class BnFuse { none, relu, add_relu };
OpCase bn_case(const Shape& s, bool training, bool affine, BnFuse fuse, uint64_t seed, Layout layout) {
  const bool fused = fuse != BnFuse::none, add = fuse == BnFuse::add_relu;
  const int64_t n = s[0], c = s[1], hw = s[2] * s[3], m = n * hw;
  std::vector<double> rm(c), rv(c);
  for (int64_t i = 0; i < c; ++i) rm[i] = 0.1 * double(i) - 0.2, rv[i] = 0.5 + 0.4 * double(i);
  OpCase k;
  k.name = cat(shape_str(s), training ? " training" : " eval", affine ? ", affine" : ", no affine",
               add     ? ", fused add + relu"
               : fused ? ", fused relu"
                       : "");
  k.inputs = {randn64(s, seed), randn64({c}, seed + 1), randn64({c}, seed + 2), f64(rm, {c}), f64(rv, {c})};
  if (add) k.inputs.push_back(randn64(s, seed + 3));  // input 5, the residual
  k.grad = affine ? std::vector<size_t>{0, 1, 2} : std::vector<size_t>{0};
  k.compute_inputs = {1, 2, 3, 4};  // gamma, beta and the running statistics stay float beside bf16 activations
  if (add) k.grad.push_back(5);
  // training: m-term sums for the statistics; eval: no sum, the six roundings of the formula on values a few
  // times |ref| (x - mean cancels), counted as k = 4, and one more for the residual's add.
  k.k = training ? m : add ? 5 : 4;
  k.k_grad = m;  // dgamma, dbeta (and dx in training) sum over the channel
  k.run = [=](const Tensors& in) {
    Tensor run_mean = in[3].clone(), run_var = in[4].clone();
    const Tensor gamma = affine ? in[1] : Tensor(), beta = affine ? in[2] : Tensor();
    Tensor y = add ? batch_norm2d_add_relu(in[0], in[5], gamma, beta, run_mean, run_var, training, 0.1, 1e-5, layout)
               : fused ? batch_norm2d_relu(in[0], gamma, beta, run_mean, run_var, training, 0.1, 1e-5, layout)
                       : batch_norm2d(in[0], gamma, beta, run_mean, run_var, training, 0.1, 1e-5, layout);
    return Tensors{y, run_mean, run_var};
  };
  k.reference = [=](const Values& v) {
    std::vector<double> y(v[0].size()), run_mean = v[3], run_var = v[4];
    auto at = [&](int64_t ni, int64_t ci, int64_t p) { return (ni * c + ci) * hw + p; };
    for (int64_t ci = 0; ci < c; ++ci) {
      double mean = run_mean[ci], var = run_var[ci];
      if (training) {
        double sum = 0, sq = 0;
        for (int64_t ni = 0; ni < n; ++ni)
          for (int64_t p = 0; p < hw; ++p) sum += v[0][at(ni, ci, p)];
        mean = sum / double(m);
        for (int64_t ni = 0; ni < n; ++ni)
          for (int64_t p = 0; p < hw; ++p) sq += (v[0][at(ni, ci, p)] - mean) * (v[0][at(ni, ci, p)] - mean);
        var = sq / double(m);
        run_mean[ci] = 0.9 * run_mean[ci] + 0.1 * mean;
        run_var[ci] = 0.9 * run_var[ci] + 0.1 * var * double(m) / double(m - 1);
      }
      for (int64_t ni = 0; ni < n; ++ni)
        for (int64_t p = 0; p < hw; ++p) {
          const int64_t i = at(ni, ci, p);
          y[i] = (v[0][i] - mean) / std::sqrt(var + 1e-5) * (affine ? v[1][ci] : 1.0) + (affine ? v[2][ci] : 0.0);
          if (add) y[i] += v[5][i];
          if (fused) y[i] = relu_ref(y[i]);
        }
    }
    return Tensors{f64(y, s), f64(run_mean, {c}), f64(run_var, {c})};
  };
  return k;
}

void push_bn_cases(OpInfo& op, BnFuse fuse, Layout layout) {
  for (bool training : {true, false})
    for (bool affine : {true, false}) op.cases.push_back(bn_case({3, 2, 2, 3}, training, affine, fuse, 11, layout));
  op.cases.push_back(bn_case({1, 3, 2, 3}, true, true, fuse, 21, layout));  // batch 1, spatial > 1
  op.cases.push_back(bn_case({4, 3, 1, 1}, true, true, fuse, 24, layout));  // 1x1 planes: statistics over the batch
  op.cases.push_back(bn_case({2, 4, 3, 5}, false, true, fuse, 27, layout));
}

OpInfo batch_norm_entry(bool fused, Layout layout = Layout::nchw) {
  OpInfo op{"batch_norm2d", {}, {}};  // batch_norm2d_relu reports its errors as batch_norm2d
  push_bn_cases(op, fused ? BnFuse::relu : BnFuse::none, layout);
  auto call = [fused](const Tensor& x, const Tensor& g, Tensor rm, Tensor rv) {
    if (fused)
      batch_norm2d_relu(x, g, Tensor(), rm, rv, true);
    else
      batch_norm2d(x, g, Tensor(), rm, rv, true);
  };
  op.bad_calls = {[call](const Make& m) {
                    call(m({2, 2, 4}), m({2}), m({2}), m({2}));
                  },
                  [call](const Make& m) {
                    call(m({2, 2, 1, 2}), m({3}), m({2}), m({2}));
                  },
                  [call](const Make& m) {
                    call(m({2, 2, 1, 2}), m({2}), m({2}), m({3}));
                  },
                  [call](const Make& m) {
                    call(m({2, 2, 1, 2}), m.other_dtype({2}), m({2}), m({2}));
                  }};
  return op;
}
OpInfo batch_norm2d_entry() { return batch_norm_entry(false); }
OpInfo batch_norm2d_relu_entry() { return batch_norm_entry(true); }

OpInfo batch_norm2d_add_relu_entry(Layout layout = Layout::nchw) {
  OpInfo op{"batch_norm2d_add_relu", {}, {}};
  push_bn_cases(op, BnFuse::add_relu, layout);
  op.cases.push_back(bn_case({2, 3, 5, 7}, true, false, BnFuse::add_relu, 31, layout));  // odd planes, no affine
  auto call = [](const Make& m, const Tensor& x, const Tensor& r, const Tensor& g) {     // x has 2 channels
    Tensor rm = m({2}), rv = m({2});
    batch_norm2d_add_relu(x, r, g, Tensor(), rm, rv, true);
  };
  op.bad_calls = {[call](const Make& m) {
                    call(m, m({2, 2, 1, 2}), m({2, 2, 2, 1}), m({2}));
                  },  // residual's shape
                  [call](const Make& m) {
                    call(m, m({2, 2, 1, 2}), m.other_dtype({2, 2, 1, 2}), m({2}));
                  },
                  [call](const Make& m) {
                    call(m, m({2, 2, 1, 2}), Tensor(), m({2}));
                  },  // no residual
                  [call](const Make& m) {
                    call(m, m({2, 2, 4}), m({2, 2, 4}), m({2}));
                  },
                  [call](const Make& m) {
                    call(m, m({2, 2, 1, 2}), m({2, 2, 1, 2}), m({3}));
                  }};
  return op;
}

// ---- max_pool2d: the max over each window, padding never wins, NaN wins (as PyTorch) ----
Pool2dParams pool(int kh, int kw, int sh, int sw, int ph, int pw) {
  Pool2dParams p;
  p.kernel_h = kh, p.kernel_w = kw, p.stride_h = sh, p.stride_w = sw, p.pad_h = ph, p.pad_w = pw;
  return p;
}

OpInfo max_pool2d_entry(Layout layout = Layout::nchw) {
  OpInfo op{"max_pool2d", {}, {}};
  const std::vector<std::pair<Shape, Pool2dParams>> cases = {
      {{2, 2, 7, 7}, pool(3, 3, 2, 2, 1, 1)},  // odd map, windows overlap each other and the padding
      {{1, 2, 6, 6}, pool(3, 3, 2, 2, 1, 1)},  // even map
      {{2, 2, 5, 5}, pool(2, 2, 2, 2, 0, 0)},  // floor: the last row and column are dropped
      {{1, 2, 5, 4}, pool(3, 2, 2, 1, 1, 1)},  // non-square kernel, stride and padding
      {{1, 2, 4, 4}, pool(2, 2, 1, 1, 1, 1)},  // corner windows hold one real value
  };
  uint64_t seed = 30;
  for (const auto& [s, p] : cases) {
    const int64_t n = s[0], c = s[1], h = s[2], w = s[3];
    const int64_t oh = (h + 2 * p.pad_h - p.kernel_h) / p.stride_h + 1,
                  ow = (w + 2 * p.pad_w - p.kernel_w) / p.stride_w + 1;
    op.cases.push_back({cat(shape_str(s), " kernel ", p.kernel_h, "x", p.kernel_w, " stride ", p.stride_h, "x",
                            p.stride_w, " pad ", p.pad_h, "x", p.pad_w),
                        {distinct(s, seed++)},
                        {0},
                        1,
                        [p = p, layout](const Tensors& in) {
                          Pool2dParams q = p;
                          q.layout = layout;
                          return Tensors{max_pool2d(in[0], q)};
                        },
                        [=, p = p](const Values& v) {
                          std::vector<double> y(n * c * oh * ow);
                          for (int64_t plane = 0; plane < n * c; ++plane)
                            for (int64_t i = 0; i < oh; ++i)
                              for (int64_t j = 0; j < ow; ++j) {
                                double best = -INFINITY;
                                for (int64_t a = 0; a < p.kernel_h; ++a)
                                  for (int64_t b = 0; b < p.kernel_w; ++b) {
                                    const int64_t ih = i * p.stride_h - p.pad_h + a, iw = j * p.stride_w - p.pad_w + b;
                                    if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
                                    const double x = v[0][(plane * h + ih) * w + iw];
                                    if (std::isnan(x) || x > best) best = std::isnan(best) ? best : x;
                                  }
                                y[(plane * oh + i) * ow + j] = best;
                              }
                          return Tensors{f64(y, {n, c, oh, ow})};
                        }});
    op.cases.back().k_grad = p.kernel_h * p.kernel_w;  // dx sums the windows that chose it
  }
  op.bad_calls = {[](const Make& m) {
                    max_pool2d(m({1, 4, 4}), pool(2, 2, 2, 2, 0, 0));
                  },
                  [](const Make& m) {
                    max_pool2d(m({1, 1, 2, 2}), pool(3, 3, 1, 1, 0, 0));
                  },
                  [](const Make& m) {
                    max_pool2d(m({1, 1, 4, 4}), pool(3, 3, 2, 2, 2, 2));
                  }};
  return op;
}

// ---- adaptive_avg_pool2d: window i spans [floor(i H / OH), ceil((i + 1) H / OH)) ----
OpInfo adaptive_avg_pool2d_entry(Layout layout = Layout::nchw) {
  OpInfo op{"adaptive_avg_pool2d", {}, {}};
  const std::vector<std::tuple<Shape, int64_t, int64_t>> cases = {
      {{2, 2, 7, 7}, 1, 1}, {{2, 2, 7, 7}, 3, 3}, {{2, 2, 5, 5}, 3, 3},
      {{1, 2, 5, 7}, 2, 4}, {{1, 1, 3, 3}, 5, 4},  // upsampling: windows of one value, some repeated
  };
  uint64_t seed = 40;
  for (const auto& [s, oh, ow] : cases) {
    const int64_t n = s[0], c = s[1], h = s[2], w = s[3];
    op.cases.push_back(
        {cat(shape_str(s), " -> ", oh, "x", ow),
         {randn64(s, seed++)},
         {0},
         h * w,
         [oh = oh, ow = ow, layout](const Tensors& in) { return Tensors{adaptive_avg_pool2d(in[0], oh, ow, layout)}; },
         [=, oh = oh, ow = ow](const Values& v) {
           std::vector<double> y(n * c * oh * ow);
           for (int64_t plane = 0; plane < n * c; ++plane)
             for (int64_t i = 0; i < oh; ++i)
               for (int64_t j = 0; j < ow; ++j) {
                 const int64_t r0 = i * h / oh, r1 = ((i + 1) * h + oh - 1) / oh;
                 const int64_t c0 = j * w / ow, c1 = ((j + 1) * w + ow - 1) / ow;
                 double sum = 0;
                 for (int64_t r = r0; r < r1; ++r)
                   for (int64_t q = c0; q < c1; ++q) sum += v[0][(plane * h + r) * w + q];
                 y[(plane * oh + i) * ow + j] = sum / double((r1 - r0) * (c1 - c0));
               }
           return Tensors{f64(y, {n, c, oh, ow})};
         }});
  }
  op.bad_calls = {[](const Make& m) {
                    adaptive_avg_pool2d(m({2, 3}), 1, 1);
                  },
                  [](const Make& m) {
                    adaptive_avg_pool2d(m({1, 1, 4, 4}), 0, 2);
                  }};
  return op;
}

// ---- cross_entropy: mean over rows of logsumexp(z) - sum_j t_j z_j, t = (1 - eps) onehot(label) + eps / C ----
OpInfo cross_entropy_entry() {
  OpInfo op{"cross_entropy", {}, {}};
  op.bf16 = false;  // the loss computes in float: mixed precision casts the logits to float32 first
  struct Case {
    int64_t n, c;
    double smoothing, shift;
  };
  for (const Case& k : {Case{4, 5, 0.0, 0}, Case{4, 5, 0.1, 0}, Case{1, 7, 0.0, 0}, Case{1, 7, 0.25, 0},
                        Case{19, 37, 0.1, 0}, Case{3, 4, 0.0, 10}}) {
    std::vector<double> labels(k.n), z = randn64({k.n, k.c}, 50 + k.c).to_vector();
    for (int64_t i = 0; i < k.n; ++i) labels[i] = double((i * 7 + 3) % k.c);
    for (double& e : z) e += k.shift;  // large logits: the softmax must subtract the maximum
    op.cases.push_back({cat("logits [", k.n, ", ", k.c, "], smoothing ", k.smoothing, ", shift ", k.shift),
                        {f64(z, {k.n, k.c}), Tensor::from_vector(labels, {k.n}, DType::i32)},
                        {0},
                        k.c + k.n,
                        [k](const Tensors& in) { return Tensors{cross_entropy(in[0], in[1], k.smoothing)}; },
                        [k](const Values& v) {
                          double total = 0;
                          for (int64_t i = 0; i < k.n; ++i) {
                            const double* row = &v[0][i * k.c];
                            const double mx = *std::max_element(row, row + k.c);
                            double sum = 0, target_dot = 0;
                            for (int64_t j = 0; j < k.c; ++j) {
                              sum += std::exp(row[j] - mx);
                              const double t = (1 - k.smoothing) * (j == int64_t(v[1][i])) + k.smoothing / double(k.c);
                              target_dot += t * row[j];
                            }
                            total += mx + std::log(sum) - target_dot;
                          }
                          return Tensors{f64({total / double(k.n)}, {})};
                        }});
  }
  op.bad_calls = {[](const Make& m) {
                    cross_entropy(m({3, 5}), m.labels(2));
                  },
                  [](const Make& m) {
                    cross_entropy(m({3, 5, 1}), m.labels(3));
                  },
                  [](const Make& m) {
                    cross_entropy(m({3, 5}), m({3}));
                  }};
  return op;
}

// ---- shortcut_a: y[n, pad + c, i, j] = x[n, c, i * stride, j * stride], zeros in the other channels ----
OpInfo shortcut_a_entry(Layout layout = Layout::nchw) {
  OpInfo op{"shortcut_a", {}, {}};
  struct Case {
    Shape s;
    int out, stride, pad;
  };
  for (const Case& k : {Case{{2, 3, 5, 5}, 8, 2, 2}, Case{{2, 4, 4, 4}, 8, 2, 2}, Case{{1, 2, 3, 3}, 2, 1, 0},
                        Case{{2, 2, 4, 6}, 6, 2, 1}, Case{{1, 2, 5, 3}, 4, 3, 2}}) {
    const int64_t n = k.s[0], c = k.s[1], h = k.s[2], w = k.s[3];
    const int64_t oh = (h + k.stride - 1) / k.stride, ow = (w + k.stride - 1) / k.stride;
    op.cases.push_back(
        {cat(shape_str(k.s), " -> ", k.out, " channels, stride ", k.stride, ", pad_front ", k.pad),
         {randn64(k.s, 60 + k.out)},
         {0},
         1,
         [k, layout](const Tensors& in) { return Tensors{shortcut_a(in[0], k.out, k.stride, k.pad, layout)}; },
         [=](const Values& v) {
           std::vector<double> y(n * k.out * oh * ow, 0.0);
           for (int64_t ni = 0; ni < n; ++ni)
             for (int64_t ci = 0; ci < c; ++ci)
               for (int64_t i = 0; i < oh; ++i)
                 for (int64_t j = 0; j < ow; ++j)
                   y[((ni * k.out + k.pad + ci) * oh + i) * ow + j] =
                       v[0][((ni * c + ci) * h + i * k.stride) * w + j * k.stride];
           return Tensors{f64(y, {n, k.out, oh, ow})};
         }});
  }
  op.bad_calls = {[](const Make& m) {
                    shortcut_a(m({2, 3, 4}), 8, 2, 2);
                  },
                  [](const Make& m) {
                    shortcut_a(m({2, 3, 4, 4}), 4, 2, 2);
                  }};
  return op;
}

// ---- to_channels_last, to_channels_first: y[n, h, w, c] = x[n, c, h, w] and back ----
OpInfo permute_entry(bool to_last) {
  OpInfo op{to_last ? "to_channels_last" : "to_channels_first", {}, {}};
  // Shapes as the logical [N, C, H, W]; one channel, or one pixel, is a view of the same memory.
  for (const Shape& s : {Shape{2, 3, 4, 5}, Shape{1, 37, 3, 35}, Shape{2, 1, 3, 4}, Shape{3, 5, 1, 1}}) {
    const int64_t n = s[0], c = s[1], h = s[2], w = s[3];
    const Shape in_shape = to_last ? s : Shape{n, h, w, c}, out_shape = to_last ? Shape{n, h, w, c} : s;
    op.cases.push_back(
        {cat(shape_str(in_shape), " -> ", shape_str(out_shape)),
         {randn64(in_shape, 70 + c)},
         {0},
         1,
         [to_last](const Tensors& in) { return Tensors{to_last ? to_channels_last(in[0]) : to_channels_first(in[0])}; },
         [=](const Values& v) {
           std::vector<double> y(v[0].size());
           for (int64_t ni = 0; ni < n; ++ni)
             for (int64_t ci = 0; ci < c; ++ci)
               for (int64_t p = 0; p < h * w; ++p) {
                 const int64_t nchw = (ni * c + ci) * h * w + p, nhwc = (ni * h * w + p) * c + ci;
                 y[to_last ? nhwc : nchw] = v[0][to_last ? nchw : nhwc];
               }
           return Tensors{f64(y, out_shape)};
         }});
  }
  op.bad_calls = {[to_last](const Make& m) {
                    to_last ? to_channels_last(m({2, 3, 4})) : to_channels_first(m({2}));
                  },
                  [to_last](const Make&) { to_last ? to_channels_last(Tensor()) : to_channels_first(Tensor()); }};
  return op;
}
OpInfo to_channels_last_entry() { return permute_entry(true); }
OpInfo to_channels_first_entry() { return permute_entry(false); }

// ---- channels last: the NHWC form of each op that has one, against the same NCHW reference ----
// Every 4-D input (activations, a conv's weight [OC, C, KH, KW] -> [OC, KH, KW, C]) goes through
// to_channels_last on the way in and every 4-D output through to_channels_first on the way out, so the forward,
// the float64 gradient check (through both permutes and the NHWC backward), CUDA vs CPU and NaN propagation all
// run on the NHWC kernels with the NCHW entry's cases and references. The bad calls are the NHWC ones.
OpInfo channels_last(OpInfo op, std::vector<std::function<void(const Make&)>> bad_calls) {
  for (OpCase& c : op.cases) {
    c.name += ", channels last";
    c.run = [run = c.run](const Tensors& in) {
      Tensors permuted = in;
      for (Tensor& t : permuted)
        if (t.dim() == 4) t = to_channels_last(t);
      Tensors out = run(permuted);
      for (Tensor& t : out)
        if (t.defined() && t.dim() == 4) t = to_channels_first(t);
      return out;
    };
  }
  op.bad_calls = std::move(bad_calls);
  return op;
}

OpInfo conv2d_nhwc_entry() {
  const Conv2dParams p = with_layout(Conv2dParams{}, Layout::nhwc);
  return channels_last(conv2d_entry(Layout::nhwc),
                       {[p](const Make& m) {  // weight [OC, KH, KW, C] with C = 3 against an input with 8
                          conv2d(m({2, 8, 8, 3}), m({4, 3, 3, 8}), Tensor(), p);
                        },
                        [p](const Make& m) {
                          conv2d(m({2, 8, 8}), m({4, 3, 3, 8}), Tensor(), p);
                        }});
}
OpInfo batch_norm2d_nhwc_entry() {
  return channels_last(batch_norm_entry(false, Layout::nhwc), {[](const Make& m) {  // gamma per dim 1, not C
                         Tensor rm = m({2}), rv = m({2});
                         batch_norm2d(m({2, 3, 4, 2}), m({3}), Tensor(), rm, rv, true, 0.1, 1e-5, Layout::nhwc);
                       }});
}
OpInfo batch_norm2d_relu_nhwc_entry() {
  return channels_last(batch_norm_entry(true, Layout::nhwc), {[](const Make& m) {
                         Tensor rm = m({3}), rv = m({3});
                         batch_norm2d_relu(m({2, 3, 4, 2}), m({3}), Tensor(), rm, rv, true, 0.1, 1e-5, Layout::nhwc);
                       }});
}
OpInfo batch_norm2d_add_relu_nhwc_entry() {
  return channels_last(batch_norm2d_add_relu_entry(Layout::nhwc), {[](const Make& m) {
                         Tensor rm = m({2}), rv = m({2});
                         batch_norm2d_add_relu(m({2, 3, 4, 2}), m({2, 3, 4, 2}), m({3}), Tensor(), rm, rv, true, 0.1,
                                               1e-5, Layout::nhwc);
                       }});
}
OpInfo max_pool2d_nhwc_entry() {
  Pool2dParams p = pool(3, 3, 2, 2, 0, 0);
  p.layout = Layout::nhwc;
  return channels_last(max_pool2d_entry(Layout::nhwc), {[p](const Make& m) {  // 2x2 plane, 3x3 window
                         max_pool2d(m({1, 2, 2, 4}), p);
                       }});
}
OpInfo adaptive_avg_pool2d_nhwc_entry() {
  return channels_last(adaptive_avg_pool2d_entry(Layout::nhwc), {[](const Make& m) {
                         adaptive_avg_pool2d(m({1, 4, 4}), 1, 1, Layout::nhwc);
                       }});
}
OpInfo shortcut_a_nhwc_entry() {
  return channels_last(shortcut_a_entry(Layout::nhwc), {[](const Make& m) {  // 8 channels do not fit in 6
                         shortcut_a(m({2, 4, 4, 8}), 6, 2, 0, Layout::nhwc);
                       }});
}

}  // namespace

OPTABLE_TEST_CASES(add_entry, "add")
OPTABLE_TEST_CASES(scale_entry, "scale")
OPTABLE_TEST_CASES(relu_entry, "relu")
OPTABLE_TEST_CASES(flatten_entry, "flatten")
OPTABLE_TEST_CASES(linear_entry, "linear")
OPTABLE_TEST_CASES(conv2d_entry, "conv2d")
OPTABLE_TEST_CASES(batch_norm2d_entry, "batch_norm2d")
OPTABLE_TEST_CASES(batch_norm2d_relu_entry, "batch_norm2d_relu")
OPTABLE_TEST_CASES(batch_norm2d_add_relu_entry, "batch_norm2d_add_relu")
OPTABLE_TEST_CASES(max_pool2d_entry, "max_pool2d")
OPTABLE_TEST_CASES(adaptive_avg_pool2d_entry, "adaptive_avg_pool2d")
OPTABLE_TEST_CASES(cross_entropy_entry, "cross_entropy")
OPTABLE_TEST_CASES(shortcut_a_entry, "shortcut_a")
OPTABLE_TEST_CASES(to_channels_last_entry, "to_channels_last")
OPTABLE_TEST_CASES(to_channels_first_entry, "to_channels_first")
OPTABLE_TEST_CASES(conv2d_nhwc_entry, "conv2d channels last")
OPTABLE_TEST_CASES(batch_norm2d_nhwc_entry, "batch_norm2d channels last")
OPTABLE_TEST_CASES(batch_norm2d_relu_nhwc_entry, "batch_norm2d_relu channels last")
OPTABLE_TEST_CASES(batch_norm2d_add_relu_nhwc_entry, "batch_norm2d_add_relu channels last")
OPTABLE_TEST_CASES(max_pool2d_nhwc_entry, "max_pool2d channels last")
OPTABLE_TEST_CASES(adaptive_avg_pool2d_nhwc_entry, "adaptive_avg_pool2d channels last")
OPTABLE_TEST_CASES(shortcut_a_nhwc_entry, "shortcut_a channels last")
