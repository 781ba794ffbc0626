// conv2d and linear on CUDA against the CPU reference: forward and all gradients in float64 (round-off level)
// and float32 (FP32 GEMMs, TF32 off), a batch split over several chunks, a float64 gradient check on the device,
// TF32 shown to be in effect (and within its tolerance), and cuDNN against the native kernels when cuDNN is there.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <vector>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "tests/gradcheck.h"
#include "tests/ops/conv_case.h"

#if ENGINE_HAVE_CUDA
#include "kernels/cuda/runtime.h"
#endif

using namespace engine;
using testing::close_ratio;
using testing::gradcheck;
using testing::rand_leaf;

namespace {

using Case = testing::ConvCase;
using testing::describe;
using testing::params;

const std::vector<Case>& cases() {
  static const std::vector<Case> list = {
      {1, 1, 5, 5, 1, 3, 3, params(1, 1, 0, 0), false},
      {3, 2, 7, 9, 4, 3, 3, params(1, 1, 1, 1), true},
      {3, 16, 8, 8, 8, 1, 1, params(1, 1, 0, 0), true},   // pointwise, several images, P = 64: per-image GEMMs
      {1, 16, 8, 8, 8, 1, 1, params(1, 1, 0, 0), false},  // pointwise, one image: GEMM straight on x
      {4, 8, 9, 7, 16, 1, 1, params(2, 2, 0, 0), false},  // strided 1x1 shortcut, P = 20: one GEMM + permute
      {2, 3, 29, 31, 8, 7, 7, params(2, 2, 3, 3), true},  // stem-like, P = 240
      {3, 2, 7, 9, 3, 3, 5, params(2, 1, 1, 2), true},    // asymmetric
      {8, 32, 14, 14, 32, 3, 3, params(1, 1, 1, 1), false},
      {1, 1, 4, 4, 2, 3, 3, params(1, 1, 3, 3), true},
      {3, 8, 1, 1, 16, 3, 3, params(1, 1, 1, 1), true},   // cropped to the centre tap
      {1, 8, 1, 1, 16, 3, 3, params(1, 1, 1, 1), false},  // ... one image
      {4, 8, 2, 2, 16, 3, 3, params(2, 2, 1, 1), true},   // cropped to rows/cols 1..2
      {2, 2, 1, 1, 3, 1, 1, params(4, 4, 3, 3), true},    // no live tap: output is the bias
      // Either side of the CUDA switch between one GEMM + permute (nb > 1 and P < 64) and per-image GEMMs that
      // write NCHW directly (P >= 64; pointwise: no im2col forward, no col2im backward).
      {3, 5, 9, 9, 7, 1, 1, params(1, 1, 0, 0), true},     // pointwise, P = 81
      {3, 5, 7, 7, 6, 1, 1, params(1, 1, 0, 0), false},    // pointwise, P = 49
      {3, 6, 10, 10, 5, 3, 3, params(1, 1, 1, 1), true},   // 3x3 s1 p1, P = 100, bias
      {3, 2, 7, 9, 4, 3, 3, params(1, 1, 1, 1), false},    // 3x3 s1 p1, P = 63
      {3, 4, 17, 19, 6, 3, 3, params(2, 2, 1, 1), false},  // 3x3 s2 p1, P = 9 * 10 = 90
      {3, 8, 17, 17, 12, 1, 1, params(2, 2, 0, 0), true},  // strided 1x1 (im2col, not pointwise), P = 81
      {2, 3, 32, 32, 8, 7, 7, params(2, 2, 3, 3), false},  // 7x7 s2 p3 stem, P = 256
      {3, 4, 1, 70, 5, 3, 3, params(1, 1, 1, 1), true},    // cropped to kernel row 1 (1x3), P = 70
  };
  return list;
}

struct Run {
  Tensor y, gx, gw, gb;
};

// Forward and backward of one case on `device`, from the same seeded values on every device.
Run run_case(const Case& k, DType dt, Device device) {
  Tensor x = rand_leaf({k.n, k.c, k.h, k.w}, 1, dt, device);
  Tensor w = rand_leaf({k.oc, k.c, k.kh, k.kw}, 2, dt, device);
  Tensor b = k.bias ? rand_leaf({k.oc}, 3, dt, device) : Tensor();
  Run r;
  r.y = conv2d(x, w, b, k.p);
  Generator gen(4);
  run_backward(r.y, randn(r.y.shape(), dt, device, gen));
  r.gx = x.grad();
  r.gw = w.grad();
  if (k.bias) r.gb = b.grad();
  return r;
}

// Tolerance atol + rtol * |ref| from the dtype's unit round-off eps and the length of the longest sum (terms):
// plain round-off grows at worst like eps * terms (partial sums of size ~sqrt(terms), each rounded), TF32 errors
// sit in the products, independent, so they grow like eps * sqrt(terms). Values are N(0, 1), so an output is of
// size ~sqrt(terms).
void require_close(const Run& got, const Run& ref, const Case& k, double eps, bool random_products = false) {
  auto check = [&](const Tensor& a, const Tensor& b, double terms) {
    const double atol = random_products ? 8 * eps * std::sqrt(terms) : 16 * eps * terms;
    const double rtol = random_products ? 8 * eps : 16 * eps * std::sqrt(terms);
    CHECK(close_ratio(a, b, atol, rtol) <= 1);
  };
  const double fwd_terms = double(k.c * k.kh * k.kw);
  const double bwd_terms = std::max(fwd_terms, double(k.n * ref.y.size(2) * ref.y.size(3)));
  check(got.y, ref.y, fwd_terms);
  check(got.gx, ref.gx, double(k.oc * k.kh * k.kw));
  check(got.gw, ref.gw, bwd_terms);
  if (k.bias) check(got.gb, ref.gb, bwd_terms);
}

// The TF32 switch lives in the CUDA runtime; in a CPU-only build these tests skip before touching it.
bool tf32() {
#if ENGINE_HAVE_CUDA
  return kernels::cuda::allow_tf32();
#else
  return false;
#endif
}
void set_tf32(bool on) {
#if ENGINE_HAVE_CUDA
  kernels::cuda::set_allow_tf32(on);
#else
  (void)on;
#endif
}

// Restores the engine-wide switches a test changes, also when it fails half-way.
struct SettingsGuard {
  ConvEngine engine = conv_engine();
  bool allow_tf32 = tf32();
  ~SettingsGuard() {
    set_conv_engine(engine);
    set_tf32(allow_tf32);
  }
};

}  // namespace

TEST_CASE("conv2d cuda: forward and backward match the CPU in float64 and float32", "[ops][conv][cuda]") {
  SKIP_WITHOUT_CUDA();
  SettingsGuard guard;
  set_conv_engine(ConvEngine::native);
  set_tf32(false);
  for (const Case& k : cases()) {
    INFO(describe(k));
    require_close(run_case(k, DType::f64, Device::cuda()), run_case(k, DType::f64, Device::cpu()), k, 1e-16);
    require_close(run_case(k, DType::f32, Device::cuda()), run_case(k, DType::f32, Device::cpu()), k, 6e-8);
  }
}

TEST_CASE("conv2d cuda: a batch split over several chunks matches the CPU", "[ops][conv][cuda]") {
  SKIP_WITHOUT_CUDA();
  SettingsGuard guard;
  set_conv_engine(ConvEngine::native);
  // 27 * 256 * 256 = 1.77M column elements per image: the CUDA budget (64M) takes 37 images, so 40 run as two
  // chunks of 37 and 3 images, both through per-image GEMMs (and the CPU, with its 16M budget, as five).
  const Case k{40, 3, 256, 256, 4, 3, 3, params(1, 1, 1, 1), true};
  require_close(run_case(k, DType::f64, Device::cuda()), run_case(k, DType::f64, Device::cpu()), k, 1e-16);
}

TEST_CASE("conv2d cuda: gradient check in float64 on the device", "[ops][conv][cuda][gradcheck]") {
  SKIP_WITHOUT_CUDA();
  SettingsGuard guard;
  set_conv_engine(ConvEngine::native);
  Tensor x = rand_leaf({2, 2, 5, 6}, 7, DType::f64, Device::cuda());
  Tensor w = rand_leaf({3, 2, 3, 3}, 8, DType::f64, Device::cuda());
  Tensor b = rand_leaf({3}, 9, DType::f64, Device::cuda());
  REQUIRE_GRADCHECK(gradcheck([&] { return conv2d(x, w, b, params(2, 1, 1, 1)); }, {x, w, b}));
}

namespace {

// Inputs that show whether TF32 was in effect. Every value is 1 + j 2^-10 + 3 2^-13 (j from a fixed sequence):
// exact in float32, while TF32 keeps 10 mantissa bits, i.e. steps of 2^-10 on [1, 2), and its conversion (round
// to nearest or truncation, either way) drops the 3 2^-13 = 0.375 step. All terms of a product sum are positive,
// so its relative error is a weighted mean of the products' relative errors, r (1/a + 1/b) with r = 3 2^-13 and
// a, b in [1, 2): between r = 3.7e-4 and 2r, far above float32's own round-off on a sum of K positive terms,
// (K + 1) 2^-24 relative (K + 1 roundings of at most 2^-24 each; 3.4e-5 at K = 576).
constexpr double kTf32Residue = 3.0 / 8192.0;
Tensor tf32_visible(const Shape& shape, uint32_t seed) {
  Tensor h = Tensor::empty(shape, DType::f32, Device::cpu());
  float* p = h.data<float>();
  uint32_t s = seed * 2654435761u + 1u;
  for (int64_t i = 0; i < h.numel(); ++i) {
    s = s * 1664525u + 1013904223u;
    p[i] = static_cast<float>(1.0 + double(s >> 22) / 1024.0 + kTf32Residue);  // s >> 22: j in 0..1023
  }
  return h;
}

// Relative errors of `got` (float32 on the device) against float64 references of the same values: `exact` and
// `dropped` (the inputs with the residue removed, i.e. what TF32 multiplies). Worst and least over elements;
// a NaN or Inf anywhere makes them NaN, which every comparison below rejects.
struct RelErrors {
  double worst_exact = 0, least_exact = INFINITY, worst_dropped = 0;
};
RelErrors rel_errors(const Tensor& got, const Tensor& exact, const Tensor& dropped) {
  const std::vector<double> g = got.to_vector(), e = exact.to_vector(), d = dropped.to_vector();
  REQUIRE(g.size() == e.size());
  RelErrors r;
  for (size_t i = 0; i < g.size(); ++i) {
    const double re = std::abs(g[i] - e[i]) / std::abs(e[i]), rd = std::abs(g[i] - d[i]) / std::abs(d[i]);
    if (!(std::isfinite(re) && std::isfinite(rd))) return {NAN, NAN, NAN};
    r.worst_exact = std::max(r.worst_exact, re);
    r.least_exact = std::min(r.least_exact, re);
    r.worst_dropped = std::max(r.worst_dropped, rd);
  }
  return r;
}

// The inputs in float64 on the CPU, as they are and with the sub-TF32 residue removed.
Tensor exact64(const Tensor& t) { return t.to(DType::f64); }
Tensor dropped64(const Tensor& t) {
  std::vector<double> v = t.to_vector();
  for (double& x : v) x -= kTf32Residue;
  return Tensor::from_vector(v, t.shape(), DType::f64);
}

// TF32 on: off from the exact result by more than float32 round-off can explain and by no more than TF32 can
// (each factor within 2^-10 relative, plus float32 accumulation), and equal, to accumulation round-off, to the
// product of the dropped inputs. TF32 off: within float32 round-off of the exact result.
void check_tf32(const std::function<Tensor(const Tensor&, const Tensor&)>& op, const Tensor& a, const Tensor& b,
                double terms) {
  const Tensor exact = op(exact64(a), exact64(b)), dropped = op(dropped64(a), dropped64(b));
  const double fp32 = (terms + 1) * std::ldexp(1.0, -24);
  // Tensor-core accumulation may truncate rather than round: twice the float32 allowance there.
  const double tf32_accumulate = 2 * fp32, tf32 = 2 * std::ldexp(1.0, -10) + tf32_accumulate;
  set_tf32(true);
  const RelErrors on = rel_errors(op(a.to(Device::cuda()), b.to(Device::cuda())), exact, dropped);
  INFO("TF32 on: relative error vs exact " << on.least_exact << " .. " << on.worst_exact << ", vs dropped inputs "
                                           << on.worst_dropped << "; float32 allows " << fp32 << ", TF32 " << tf32);
  CHECK(on.least_exact > 4 * fp32);  // 0.9 r > 4 fp32 at these K: well clear of round-off
  CHECK(on.least_exact >= 0.9 * kTf32Residue);
  CHECK(on.worst_exact <= tf32);
  CHECK(on.worst_dropped <= tf32_accumulate);
  set_tf32(false);
  const RelErrors off = rel_errors(op(a.to(Device::cuda()), b.to(Device::cuda())), exact, dropped);
  INFO("TF32 off: relative error vs exact up to " << off.worst_exact);
  CHECK(off.worst_exact <= fp32);
}

}  // namespace

TEST_CASE("conv2d cuda: TF32 stays within its stated tolerance, forward and backward", "[ops][conv][cuda]") {
  SKIP_WITHOUT_CUDA();
  SettingsGuard guard;
  set_conv_engine(ConvEngine::native);
  set_tf32(true);
  // TF32 keeps 10 mantissa bits: unit round-off 2^-11 ~ 4.9e-4 in each rounded factor of a product.
  const Case k{8, 32, 14, 14, 32, 3, 3, params(1, 1, 1, 1), true};
  require_close(run_case(k, DType::f32, Device::cuda()), run_case(k, DType::f64, Device::cpu()), k, 1e-3, true);
}

// The TF32 switch reaches the GEMMs: with it on, results carry TF32's input rounding (and no more); with it off,
// float32's. Shapes are multiples of 16, so cuBLAS has tensor-core kernels for them.
TEST_CASE("conv2d and linear cuda: TF32 is in effect when on, and float32 exact when off", "[ops][conv][cuda]") {
  SKIP_WITHOUT_CUDA();
  SettingsGuard guard;
  set_conv_engine(ConvEngine::native);
  {
    INFO("linear [128, 512] x [64, 512]^T");
    check_tf32([](const Tensor& x, const Tensor& w) { return linear(x, w, Tensor()); }, tf32_visible({128, 512}, 1),
               tf32_visible({64, 512}, 2), 512);
  }
  {
    // 64 channels x 3 x 3 = 576 terms per output; 16 x 16 output positions per image, no padding (every output
    // sums all 576 terms, all positive).
    INFO("conv2d [2, 64, 18, 18] * [64, 64, 3, 3]");
    check_tf32([](const Tensor& x, const Tensor& w) { return conv2d(x, w, Tensor(), params(1, 1, 0, 0)); },
               tf32_visible({2, 64, 18, 18}, 3), tf32_visible({64, 64, 3, 3}, 4), 576);
  }
}

// cuDNN's first call of a shape searches its algorithms (writing the output while it times them); `fastest`
// times both engines on its first call and keeps the faster. Both calls of each must give the native result.
TEST_CASE("conv2d cuda: cuDNN and the fastest engine match the native kernels, on the first call and after",
          "[ops][conv][cuda][cudnn]") {
  SKIP_WITHOUT_CUDA();
  if (!cudnn_compiled()) {
    WARN("SKIPPED: this build has no cuDNN");
    return;
  }
  SettingsGuard guard;
  set_tf32(false);
  for (const Case& k : cases()) {
    INFO(describe(k));
    for (DType dt : {DType::f64, DType::f32}) {
      set_conv_engine(ConvEngine::native);
      const Run native = run_case(k, dt, Device::cuda());
      // cuDNN may choose Winograd or FFT algorithms, whose round-off is a few times that of a plain dot product.
      const double eps = dt == DType::f64 ? 4e-16 : 2.4e-7;
      for (ConvEngine e : {ConvEngine::cudnn, ConvEngine::fastest}) {
        set_conv_engine(e);
        const Run first = run_case(k, dt, Device::cuda());
        const Run again = run_case(k, dt, Device::cuda());  // the cached algorithms / choice
        require_close(first, native, k, eps);
        require_close(again, native, k, eps);
      }
    }
  }
}

// A shape cuDNN cannot run goes to our kernels under `fastest` instead of failing the run. cuDNN's descriptors hold
// 32-bit sizes, so an input of more than INT_MAX elements is refused by name (kernels/cudnn/conv.cpp), while ours
// index one chunk of images at a time: 513 images of [16384, 16, 16] in bf16 (4.3 GB), a 1x1 convolution to one
// channel with every weight 2^-14 over inputs of 1, so every output is exactly 1 (16384 exact float terms).
TEST_CASE("conv2d cuda: fastest runs a shape cuDNN refuses on the native kernels", "[ops][conv][cuda][cudnn]") {
  SKIP_WITHOUT_CUDA();
#if ENGINE_HAVE_CUDA
  if (!cudnn_compiled()) {
    WARN("SKIPPED: this build has no cuDNN");
    return;
  }
  const int64_t n = 513, c = 16384, hw = 16;
  if (kernels::cuda::free_device_memory() < (std::size_t(8) << 30)) {
    WARN("SKIPPED: needs 8 GiB of free device memory for a 4.3 GB input");
    return;
  }
  SettingsGuard guard;
  const Tensor x = Tensor::full({n, c, hw, hw}, 1.0, DType::bf16, Device::cuda());
  const Tensor w = Tensor::full({1, c, 1, 1}, std::ldexp(1.0, -14), DType::bf16, Device::cuda());
  set_conv_engine(ConvEngine::cudnn);
  REQUIRE_THROWS_WITH(conv2d(x, w, Tensor(), Conv2dParams{}), Catch::Contains("beyond cuDNN's 32-bit descriptors"));
  set_conv_engine(ConvEngine::fastest);
  for (int call = 0; call < 2; ++call) {  // the first call chooses, the second runs the kept choice
    INFO("call " << call);
    const std::vector<double> y = conv2d(x, w, Tensor(), Conv2dParams{}).to(Device::cpu()).to_vector();
    REQUIRE(y.size() == std::size_t(n * hw * hw));
    REQUIRE(std::count(y.begin(), y.end(), 1.0) == std::ptrdiff_t(y.size()));
  }
#endif
}

namespace {

// Gradients when only the input (want_x) or only the weight and bias require them: the backward runs with gw, gb
// or gx null, which on CUDA changes which passes run (the permute of gy serves only the weight GEMM).
std::vector<Tensor> partial_grads(const Case& k, bool want_x, DType dt, Device dev) {
  Tensor x = rand_leaf({k.n, k.c, k.h, k.w}, 1, dt, dev);
  Tensor w = rand_leaf({k.oc, k.c, k.kh, k.kw}, 2, dt, dev);
  Tensor b = k.bias ? rand_leaf({k.oc}, 3, dt, dev) : Tensor();
  if (want_x) {
    w = w.detach();
    if (b.defined()) b = b.detach();
  } else {
    x = x.detach();  // an image: no gradient
  }
  Tensor y = conv2d(x, w, b, k.p);
  Generator gen(4);
  run_backward(y, randn(y.shape(), dt, dev, gen));
  if (want_x) {
    REQUIRE_FALSE(w.grad().defined());
    return {x.grad()};
  }
  REQUIRE_FALSE(x.grad().defined());
  std::vector<Tensor> g{w.grad()};
  if (k.bias) g.push_back(b.grad());
  return g;
}

const std::vector<Case>& partial_cases() {
  static const std::vector<Case> list = {
      {4, 8, 9, 9, 16, 3, 3, params(2, 2, 1, 1), true},   // P = 25: one GEMM + permute
      {3, 4, 17, 19, 6, 3, 3, params(2, 2, 1, 1), true},  // P = 90: per-image GEMMs
      {3, 5, 9, 9, 7, 1, 1, params(1, 1, 0, 0), false},   // pointwise, P = 81: no im2col/col2im for gx
      {3, 5, 7, 7, 6, 1, 1, params(1, 1, 0, 0), false},   // pointwise, P = 49
      {1, 5, 9, 9, 7, 1, 1, params(1, 1, 0, 0), true},    // pointwise, one image
      {3, 4, 1, 70, 5, 3, 3, params(1, 1, 1, 1), false},  // cropped, P = 70
  };
  return list;
}

// Every CUDA convolution engine this build has.
std::vector<ConvEngine> cuda_engines() {
  std::vector<ConvEngine> e{ConvEngine::native};
  if (cudnn_compiled()) e.insert(e.end(), {ConvEngine::cudnn, ConvEngine::fastest});
  return e;
}

}  // namespace

TEST_CASE("conv2d cuda: weight gradient alone (input needs none), every engine", "[ops][conv][cuda]") {
  SKIP_WITHOUT_CUDA();
  SettingsGuard guard;
  set_tf32(false);
  for (const Case& k : partial_cases()) {
    INFO(describe(k));
    std::vector<Tensor> ref = partial_grads(k, false, DType::f64, Device::cpu());
    for (ConvEngine e : cuda_engines()) {
      set_conv_engine(e);
      std::vector<Tensor> got = partial_grads(k, false, DType::f64, Device::cuda());
      REQUIRE(got.size() == ref.size());
      for (size_t i = 0; i < got.size(); ++i) CHECK(close_ratio(got[i], ref[i], 1e-11, 1e-11) <= 1);
    }
  }
}

TEST_CASE("conv2d cuda: input gradient alone (weight needs none), every engine", "[ops][conv][cuda]") {
  SKIP_WITHOUT_CUDA();
  SettingsGuard guard;
  set_tf32(false);
  for (const Case& k : partial_cases()) {
    INFO(describe(k));
    for (DType dt : {DType::f64, DType::f32}) {
      std::vector<Tensor> ref = partial_grads(k, true, dt, Device::cpu());
      // As require_close: sums of oc*kh*kw products, eps the unit round-off (cuDNN may run Winograd or FFT).
      const double eps = dt == DType::f64 ? 4e-16 : 2.4e-7, terms = double(k.oc * k.kh * k.kw);
      for (ConvEngine e : cuda_engines()) {
        set_conv_engine(e);
        std::vector<Tensor> got = partial_grads(k, true, dt, Device::cuda());
        REQUIRE(got.size() == 1);
        CHECK(close_ratio(got[0], ref[0], 16 * eps * terms, 16 * eps * std::sqrt(terms)) <= 1);
      }
    }
  }
}

TEST_CASE("linear cuda: forward and backward match the CPU", "[ops][linear][cuda]") {
  SKIP_WITHOUT_CUDA();
  SettingsGuard guard;
  set_tf32(false);
  for (DType dt : {DType::f64, DType::f32}) {
    Tensor out[2][4];
    for (int d = 0; d < 2; ++d) {
      Device dev = d == 0 ? Device::cpu() : Device::cuda();
      Tensor x = rand_leaf({33, 70}, 1, dt, dev), w = rand_leaf({10, 70}, 2, dt, dev), b = rand_leaf({10}, 3, dt, dev);
      Tensor y = linear(x, w, b);
      Generator gen(4);
      run_backward(y, randn(y.shape(), dt, dev, gen));
      out[d][0] = y, out[d][1] = x.grad(), out[d][2] = w.grad(), out[d][3] = b.grad();
    }
    const double tol = dt == DType::f64 ? 1e-12 : 1e-4;
    for (int i = 0; i < 4; ++i) CHECK(close_ratio(out[1][i], out[0][i], tol, tol) <= 1);
  }
  Tensor x = rand_leaf({4, 5}, 5, DType::f64, Device::cuda()), w = rand_leaf({3, 5}, 6, DType::f64, Device::cuda());
  Tensor b = rand_leaf({3}, 7, DType::f64, Device::cuda());
  REQUIRE_GRADCHECK(gradcheck([&] { return linear(x, w, b); }, {x, w, b}));
}
