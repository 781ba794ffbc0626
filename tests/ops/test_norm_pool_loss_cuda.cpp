// CUDA against the CPU reference for batch norm, pooling and cross-entropy: the same inputs on both devices,
// forward outputs, every gradient, and BN running stats compared with close_ratio (atol + rtol * |ref|).
// float64: atol 1e-12, rtol 1e-10 (round-off only: the sums are added in different orders);
// float32: atol 1e-5, rtol 1e-4 (float element-wise math on the GPU against double-accumulated CPU math).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <numeric>
#include <random>

#include "apps/common/metrics.h"
#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "tests/gradcheck.h"

using namespace engine;
using testing::rand_leaf;

namespace {
struct Tol {
  double atol, rtol;
};
Tol tol_for(DType d) { return d == DType::f64 ? Tol{1e-12, 1e-10} : Tol{1e-5, 1e-4}; }

// Runs `f` on inputs copied to `device`, seeds backward with `seed`, and returns the outputs followed by the
// inputs' gradients (empty tensor where none), all on the CPU.
using Case = std::function<std::vector<Tensor>(const std::vector<Tensor>& inputs)>;
std::vector<Tensor> run_on(Device device, const Case& f, const std::vector<Tensor>& host_inputs, bool backward = true) {
  std::vector<Tensor> inputs;
  for (const Tensor& t : host_inputs) {
    Tensor d = t.detach().to(device);
    if (t.requires_grad()) d.set_requires_grad(true);
    inputs.push_back(d);
  }
  std::vector<Tensor> outs = f(inputs);
  if (backward) {
    Generator g(99);
    Tensor seed = randn(outs[0].shape(), DType::f64, Device::cpu(), g).to(outs[0].dtype()).to(device);
    run_backward(outs[0], seed);
  }
  std::vector<Tensor> result;
  for (const Tensor& o : outs) result.push_back(o.detach().to(Device::cpu()));
  for (const Tensor& t : inputs) result.push_back(t.grad().defined() ? t.grad().to(Device::cpu()) : Tensor());
  return result;
}

void compare(const Case& f, const std::vector<Tensor>& host_inputs, DType dtype, bool backward = true) {
  std::vector<Tensor> ref = run_on(Device::cpu(), f, host_inputs, backward);
  std::vector<Tensor> got = run_on(Device::cuda(), f, host_inputs, backward);
  REQUIRE(ref.size() == got.size());
  const Tol tol = tol_for(dtype);
  for (size_t i = 0; i < ref.size(); ++i) {
    REQUIRE(ref[i].defined() == got[i].defined());
    if (!ref[i].defined()) continue;
    INFO("result " << i << " " << ref[i].str() << ", " << dtype_name(dtype));
    REQUIRE(testing::close_ratio(got[i], ref[i], tol.atol, tol.rtol) <= 1.0);
  }
}

Tensor leaf(const Shape& shape, uint64_t seed, DType dtype, double offset = 0, bool grad = true) {
  Generator g(seed);
  Tensor t = randn(shape, DType::f64, Device::cpu(), g);
  if (offset != 0) {
    std::vector<double> v = t.to_vector();
    for (double& e : v) e += offset;
    t = Tensor::from_vector(v, shape, DType::f64);
  }
  t = t.to(dtype);
  if (grad) t.set_requires_grad(true);
  return t;
}

// Distinct values (a shuffled ramp) so that max-pool winners are the same on both devices.
Tensor distinct(const Shape& shape, uint64_t seed, DType dtype) {
  std::vector<double> v(numel_of(shape));
  std::iota(v.begin(), v.end(), 0.0);
  std::shuffle(v.begin(), v.end(), std::mt19937_64(seed));
  for (double& e : v) e *= 0.01;
  Tensor t = Tensor::from_vector(v, shape, dtype);
  t.set_requires_grad(true);
  return t;
}
}  // namespace

namespace {
// Restores the native batch-norm engine when a test leaves, also on failure.
struct BatchNormEngineGuard {
  explicit BatchNormEngineGuard(BatchNormEngine e) { set_batch_norm_engine(e); }
  ~BatchNormEngineGuard() { set_batch_norm_engine(BatchNormEngine::native); }
};

// with_offset_f32: include the float32 case whose mean (100) is large against its spread (1), which needs a sound
// variance algorithm in float; cuDNN does not document its algorithm, so that case is checked for ours only.
void compare_batch_norm(bool with_offset_f32) {
  // Shapes cover: H*W below one block (9) and above it (300), one and several slices per channel (m = 7200 >
  // 4096 values), batch 1, and a large mean offset (shifted sums).
  const std::vector<std::pair<Shape, double>> shapes = {{{4, 3, 5, 7}, 0},   {{3, 4, 3, 3}, 0}, {{2, 2, 15, 20}, 0},
                                                        {{8, 2, 30, 30}, 0}, {{1, 3, 4, 4}, 0}, {{4, 3, 6, 6}, 100}};
  for (DType dtype : {DType::f64, DType::f32}) {
    for (const auto& [shape, offset] : shapes) {
      if (offset != 0 && dtype == DType::f32 && !with_offset_f32) continue;
      const int64_t C = shape[1];
      for (bool training : {true, false}) {
        for (bool affine : {true, false}) {
          for (bool fused_relu : {false, true}) {
            INFO("shape " << shape_str(shape) << " offset " << offset << " training " << training << " affine "
                          << affine << " fused relu " << fused_relu);
            const std::vector<double> var_values = {1.5, 0.7, 2.2, 0.9};  // running variances must be positive
            Tensor running_var = Tensor::from_vector({var_values.begin(), var_values.begin() + C}, {C}, dtype);
            std::vector<Tensor> in = {leaf(shape, 1, dtype, offset), leaf({C}, 2, dtype), leaf({C}, 3, dtype),
                                      leaf({C}, 4, dtype, 0, false), running_var};
            Case f = [&](const std::vector<Tensor>& t) {
              Tensor rm = t[3].clone(), rv = t[4].clone();
              Tensor gamma = affine ? t[1] : Tensor(), beta = affine ? t[2] : Tensor();
              Tensor y = fused_relu ? batch_norm2d_relu(t[0], gamma, beta, rm, rv, training, 0.1, 1e-5)
                                    : batch_norm2d(t[0], gamma, beta, rm, rv, training, 0.1, 1e-5);
              return std::vector<Tensor>{y, rm, rv};
            };
            compare(f, in, dtype);
          }
        }
      }
    }
  }
}
}  // namespace

TEST_CASE("batch_norm2d CUDA matches CPU: outputs, gradients, running stats", "[ops][batch_norm][cuda]") {
  SKIP_WITHOUT_CUDA();
  compare_batch_norm(true);
}

TEST_CASE("batch_norm2d through cuDNN matches CPU", "[ops][batch_norm][cuda][cudnn]") {
  SKIP_WITHOUT_CUDA();
  if (!cudnn_compiled()) {
    WARN("SKIPPED: this build has no cuDNN");
    return;
  }
  BatchNormEngineGuard guard(BatchNormEngine::cudnn);
  compare_batch_norm(false);
}

TEST_CASE("max_pool2d and adaptive_avg_pool2d CUDA match CPU", "[ops][pool][cuda]") {
  SKIP_WITHOUT_CUDA();
  struct MaxCase {
    Shape shape;
    int k, s, p;
  };
  const std::vector<MaxCase> max_cases = {
      {{2, 3, 9, 9}, 3, 2, 1}, {{2, 3, 8, 8}, 3, 2, 1}, {{2, 3, 7, 7}, 2, 2, 0}, {{1, 2, 12, 10}, 3, 1, 1}};
  struct AvgCase {
    Shape shape;
    int oh, ow;
  };
  const std::vector<AvgCase> avg_cases = {
      {{2, 3, 7, 7}, 1, 1}, {{2, 3, 7, 7}, 3, 3}, {{2, 3, 5, 5}, 3, 3}, {{2, 3, 5, 7}, 2, 4}, {{1, 2, 3, 3}, 5, 4}};
  for (DType dtype : {DType::f64, DType::f32}) {
    for (const auto& c : max_cases) {
      INFO("max_pool2d " << shape_str(c.shape) << " k " << c.k << " s " << c.s << " p " << c.p);
      Pool2dParams p;
      p.kernel_h = p.kernel_w = c.k;
      p.stride_h = p.stride_w = c.s;
      p.pad_h = p.pad_w = c.p;
      compare([&](const std::vector<Tensor>& t) { return std::vector<Tensor>{max_pool2d(t[0], p)}; },
              {distinct(c.shape, 7, dtype)}, dtype);
    }
    for (const auto& c : avg_cases) {
      INFO("adaptive_avg_pool2d " << shape_str(c.shape) << " -> " << c.oh << "x" << c.ow);
      compare([&](const std::vector<Tensor>& t) { return std::vector<Tensor>{adaptive_avg_pool2d(t[0], c.oh, c.ow)}; },
              {leaf(c.shape, 8, dtype)}, dtype);
    }
  }
}

TEST_CASE("cross_entropy CUDA matches CPU", "[ops][cross_entropy][cuda]") {
  SKIP_WITHOUT_CUDA();
  for (DType dtype : {DType::f64, DType::f32}) {
    for (int64_t classes : {10, 37, 100}) {
      for (double smoothing : {0.0, 0.1}) {
        INFO(dtype_name(dtype) << " classes " << classes << " smoothing " << smoothing);
        const int64_t n = 19;
        std::vector<double> lv(n);
        for (int64_t i = 0; i < n; ++i) lv[i] = double((i * 7) % classes);
        Tensor labels = Tensor::from_vector(lv, {n}, DType::i32);
        compare(
            [&](const std::vector<Tensor>& t) {
              return std::vector<Tensor>{cross_entropy(t[0], labels.to(t[0].device()), smoothing)};
            },
            {leaf({n, classes}, 9, dtype, 0.0)}, dtype);
      }
    }
  }
  Tensor z = Tensor::zeros({3, 5}, DType::f32, Device::cuda());
  REQUIRE_THROWS_WITH(cross_entropy(z, Tensor::from_vector({0, 1, 2}, {3}, DType::i32)),
                      Catch::Contains("labels are on cpu but logits are on cuda"));
}

// On CUDA the step does not wait for the label check: the kernel files the first bad label in a device record,
// and the error comes at the next read of the metrics (check_device_errors), naming label, row, range and call.
TEST_CASE("cross_entropy CUDA: a bad label is reported when the metrics are read", "[ops][cross_entropy][cuda]") {
  SKIP_WITHOUT_CUDA();
  const Device cuda = Device::cuda();
  REQUIRE_NOTHROW(check_device_errors(cuda));  // nothing left over from earlier tests
  auto labels = [&](std::vector<double> v) {
    return Tensor::from_vector(v, {static_cast<int64_t>(v.size())}, DType::i32, cuda);
  };
  for (DType dtype : {DType::f32, DType::f64}) {
    INFO(dtype_name(dtype));
    Tensor z = rand_leaf({3, 5}, 61, dtype, cuda);
    Tensor good = cross_entropy(z, labels({0, 1, 2}));  // call 1
    Tensor bad;
    REQUIRE_NOTHROW(bad = cross_entropy(z, labels({0, 7, -1})));  // call 2: no error yet, nothing waited for
    REQUIRE_NOTHROW(cross_entropy(z, labels({9, 1, 2})));         // call 3: a later bad label does not replace it
    CHECK(std::isfinite(good.item()));
    CHECK(std::isnan(bad.item()));
    // The bad rows' gradient is zero, the good row's is the CPU's.
    run_backward(bad, Tensor::full({}, 1.0, dtype, cuda));
    const std::vector<double> g = z.grad().to_vector();
    Tensor zc = z.detach().to(Device::cpu()).set_requires_grad(true);
    cross_entropy(zc, Tensor::from_vector({0, 1, 2}, {3}, DType::i32)).backward();
    const std::vector<double> gc = zc.grad().to_vector();
    for (int j = 0; j < 5; ++j) {
      INFO("column " << j);
      CHECK(std::abs(g[j] - gc[j]) <= 1e-6);  // row 0 (label 0 on both): float32 round-off of values <= 1/3
      CHECK(g[5 + j] == 0.0);
      CHECK(g[10 + j] == 0.0);
    }
    REQUIRE_THROWS_WITH(check_device_errors(cuda),
                        Catch::Contains("cross_entropy: label 7 at row 1 is outside [0, 5) for logits [3, 5]") &&
                            Catch::Contains("in call 2 of cross_entropy"));
    REQUIRE_NOTHROW(check_device_errors(cuda));  // reported once, then cleared
  }
  // Through the trainer's path: MetricsAccumulator::read() raises it.
  app::MetricsAccumulator acc(5, cuda);
  Tensor z = Tensor::zeros({4, 5}, DType::f32, cuda);
  Tensor y = labels({1, 2, 3, 5});
  acc.add(z, y, cross_entropy(z, y), 0);
  REQUIRE_THROWS_WITH(acc.read(), Catch::Contains("label 5 at row 3 is outside [0, 5) for logits [4, 5]"));
  REQUIRE_NOTHROW(acc.read());
}
