// conv2d and linear on CUDA against the CPU reference: forward and all gradients in float64 (round-off level)
// and float32 (FP32 GEMMs, TF32 off), a batch split over several chunks, a float64 gradient check on the device,
// TF32 with a looser stated tolerance, and cuDNN against the native kernels when cuDNN is compiled in.
#include <catch2/catch.hpp>
#include <cmath>

#include "engine/autograd.h"
#include "engine/ops/conv2d.h"
#include "engine/ops/linear.h"
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

TEST_CASE("conv2d cuda: TF32 stays within its stated tolerance", "[ops][conv][cuda]") {
  SKIP_WITHOUT_CUDA();
  SettingsGuard guard;
  set_conv_engine(ConvEngine::native);
  set_tf32(true);
  // TF32 keeps 10 mantissa bits: unit round-off 2^-11 ~ 4.9e-4 in each rounded factor of a product.
  const Case k{8, 32, 14, 14, 32, 3, 3, params(1, 1, 1, 1), true};
  require_close(run_case(k, DType::f32, Device::cuda()), run_case(k, DType::f64, Device::cpu()), k, 1e-3, true);
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
