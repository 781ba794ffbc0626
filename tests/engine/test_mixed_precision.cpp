// Mixed precision (bf16) on the CPU: the differentiable cast, the layers' casts of their float32 masters, and a
// whole training step of a ResNet against the same step in float32. The CPU's bf16 kernels are the reference the
// CUDA ones are compared with (the op table's bf16 backends), so everything here runs without a GPU.
#include <catch2/catch.hpp>
#include <cmath>

#include "engine/autograd.h"
#include "engine/nn/layers.h"
#include "engine/optim/sgd.h"
#include "engine/random.h"
#include "models/registry.h"
#include "tests/compare.h"

using namespace engine;

namespace {

constexpr double kU = 0x1p-8;  // bf16's unit roundoff (8 significant bits)

double bf16_round(double v) { return double(kernels::bf16_to_float(kernels::bf16_from_double(v))); }

Tensor randn_f32(const Shape& s, uint64_t seed) {
  Generator g(seed);
  return randn(s, DType::f32, Device::cpu(), g);
}

// ||a - b|| / ||b|| over all elements; NaN or Inf anywhere makes it +inf, so a comparison with it fails.
double relative_norm_error(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) return INFINITY;
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return den > 0 ? std::sqrt(num / den) : (num > 0 ? INFINITY : 0.0);
}

}  // namespace

TEST_CASE("mixed precision: cast rounds to nearest even and converts the gradient back", "[bf16][mixed]") {
  Tensor x = Tensor::from_vector({0.1, -1.0 - 0x1p-8, 1.0 + 0x3p-8, 3.0e38}, {4}, DType::f32);
  x.set_requires_grad(true);
  Tensor y = cast(x, DType::bf16);
  REQUIRE(y.dtype() == DType::bf16);
  const std::vector<double> v = y.to_vector(), xs = x.to_vector();
  for (size_t i = 0; i < v.size(); ++i) REQUIRE(v[i] == bf16_round(xs[i]));
  REQUIRE(v[1] == -1.0);          // a tie goes to the even neighbour
  REQUIRE(v[2] == 1.0 + 0x1p-6);  // and here upwards, to even
  REQUIRE(std::isfinite(v[3]));   // 3e38 is below bf16's largest finite value
  // The gradient of a cast is the incoming gradient converted to x's dtype: bf16 values are exact in float32.
  const Tensor g = Tensor::from_vector({0.5, -2.0, 0x1p-20, 7.0}, {4}, DType::bf16);
  run_backward(y, g);
  REQUIRE(x.grad().dtype() == DType::f32);
  REQUIRE(x.grad().to_vector() == g.to_vector());
  // Casting to the dtype a tensor already has is that tensor (no copy, nothing recorded).
  REQUIRE(cast(x, DType::f32).raw_data() == x.raw_data());
  REQUIRE_THROWS_WITH(cast(x, DType::i32), Catch::StartsWith("cast: "));
}

TEST_CASE("mixed precision: Linear and Conv2d cast their float32 masters for a bf16 input", "[bf16][mixed]") {
  nn::Linear lin(5, 3);
  Tensor x = randn_f32({4, 5}, 1);
  Tensor xb = cast(x, DType::bf16);
  Tensor y = lin(xb);
  REQUIRE(y.dtype() == DType::bf16);
  REQUIRE(lin.weight.dtype() == DType::f32);
  // The output is the float product of the bf16-rounded operands plus the bf16 bias, each rounded to bf16: two
  // roundings of relative u, plus float sums over 5 terms (negligible beside them).
  const std::vector<double> xv = xb.to_vector(), w = lin.weight.to_vector(), b = lin.bias.to_vector(),
                            got = y.to_vector();
  std::vector<double> want(12);
  for (int i = 0; i < 4; ++i)
    for (int o = 0; o < 3; ++o) {
      double s = 0;
      for (int j = 0; j < 5; ++j) s += xv[i * 5 + j] * bf16_round(w[o * 5 + j]);
      want[i * 3 + o] = s + bf16_round(b[o]);
    }
  REQUIRE_OK(testing::compare_close(got, want, 2 * kU, 2 * kU));
  run_backward(cast(y, DType::f32), Tensor::full({4, 3}, 1.0, DType::f32));
  REQUIRE(lin.weight.grad().dtype() == DType::f32);
  REQUIRE(lin.bias.grad().dtype() == DType::f32);
  // d(sum y)/d bias = the batch size, exactly (small integers are exact in bf16).
  REQUIRE(lin.bias.grad().to_vector() == std::vector<double>(3, 4.0));

  nn::Conv2d conv(2, 3, 3, 1, 1);
  Tensor img = cast(randn_f32({2, 2, 5, 5}, 2), DType::bf16);
  Tensor out = conv(img);
  REQUIRE(out.dtype() == DType::bf16);
  run_backward(cast(out, DType::f32), Tensor::full(out.shape(), 1.0, DType::f32));
  REQUIRE(conv.weight.grad().dtype() == DType::f32);
  // A float32 input against float64 weights is no mixed precision: still the op's error.
  nn::Linear lin64(5, 3);
  lin64.to(DType::f64);
  REQUIRE_THROWS_WITH(lin64(x), Catch::StartsWith("linear: "));
}

// One training step of resnet20 (all its ops: conv, fused BN-ReLU, the option-A shortcut, add, pooling, linear,
// the loss) in bf16 mixed precision against the same step in float32, from the same weights and batch.
// Tolerance: each of the net's L = 20 layers rounds its output to bf16 on the way forward and its input gradient
// on the way back (relative u = 2^-8 each, in norm); to first order these relative errors add along the path, so
// the loss and every gradient are within about 2 L u of float32's; a factor 2 more covers batch norm, whose
// gradient divides by the batch's spread and so amplifies what it is given.
TEST_CASE("mixed precision: a resnet20 training step in bf16 matches float32 within 4 L u", "[bf16][mixed][models]") {
  auto net = models::create("resnet20");
  net->train();
  const Tensor x = randn_f32({32, 1, 16, 16}, 3);
  std::vector<double> classes(32);
  for (int i = 0; i < 32; ++i) classes[i] = i % 10;
  const Tensor labels = Tensor::from_vector(classes, {32}, DType::i32);
  auto step = [&](DType act) {
    for (Tensor& p : net->parameters()) p.zero_grad();
    Tensor loss = cross_entropy(nn::forward_logits(*net, x, act), labels);
    REQUIRE(loss.dtype() == DType::f32);
    loss.backward();
    std::vector<double> grads;
    for (const Tensor& p : net->parameters()) {
      REQUIRE(p.dtype() == DType::f32);
      REQUIRE(p.grad().dtype() == DType::f32);
      for (double v : p.grad().to_vector()) grads.push_back(v);
    }
    return std::pair{loss.item(), grads};
  };
  const auto [loss32, grads32] = step(DType::f32);
  const auto [loss16, grads16] = step(DType::bf16);
  const double tol = 4 * 20 * kU;
  INFO("loss float32 " << loss32 << ", bf16 " << loss16);
  REQUIRE(std::isfinite(loss16));
  REQUIRE(std::abs(loss16 - loss32) <= tol * std::abs(loss32));
  const double err = relative_norm_error(grads16, grads32);
  INFO("relative error of all gradients, in norm: " << err << " (tolerance " << tol << ")");
  REQUIRE(err <= tol);
  // And the step itself: SGD updates the float32 masters with the float32 gradients.
  optim::SGD opt(net->parameters(), optim::SgdOptions{});
  opt.step();
  for (const Tensor& p : net->parameters()) REQUIRE(p.dtype() == DType::f32);
}
