#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "tests/gradcheck.h"
#include "tests/require_close.h"

using namespace engine;
using testing::gradcheck;
using testing::rand_leaf;
using testing::require_close;

namespace {
// x [N=2, C=2, H=1, W=2]: channel 0 holds {1, 3, 1, 3} (mean 2, biased var 1), channel 1 holds {2, 10, 6, 6}
// (mean 6, biased var 8).
Tensor hand_input(DType dtype = DType::f64) {
  return Tensor::from_vector({1, 3, 2, 10, 1, 3, 6, 6}, {2, 2, 1, 2}, dtype);
}

}  // namespace

TEST_CASE("batch_norm2d: training forward and running stats by hand", "[ops][batch_norm]") {
  for (DType dtype : {DType::f64, DType::f32}) {
    const double tol = dtype == DType::f64 ? 1e-12 : 1e-6;
    Tensor x = hand_input(dtype);
    Tensor gamma = Tensor::from_vector({2, 0.5}, {2}, dtype), beta = Tensor::from_vector({1, -1}, {2}, dtype);
    Tensor rm = Tensor::from_vector({0.5, -1}, {2}, dtype), rv = Tensor::from_vector({2, 3}, {2}, dtype);
    Tensor y = batch_norm2d(x, gamma, beta, rm, rv, /*training=*/true, /*momentum=*/0.1, /*eps=*/0.0);
    const double r2 = std::sqrt(2.0) / 2;
    // channel 0: xhat = -1, 1, -1, 1 -> 2 * xhat + 1; channel 1: xhat = -sqrt2, sqrt2, 0, 0 -> 0.5 * xhat - 1.
    require_close(y.to_vector(), {-1, 3, -1 - r2, -1 + r2, -1, 3, -1, -1}, tol);
    // running = 0.9 * running + 0.1 * stat, with the unbiased variance var * 4 / 3.
    require_close(rm.to_vector(), {0.9 * 0.5 + 0.1 * 2, 0.9 * -1 + 0.1 * 6}, tol);
    require_close(rv.to_vector(), {0.9 * 2 + 0.1 * (1.0 * 4 / 3), 0.9 * 3 + 0.1 * (8.0 * 4 / 3)}, tol);

    // Eval uses the running stats and leaves them alone.
    const std::vector<double> m = rm.to_vector(), v = rv.to_vector();
    const double eps = 1e-5;
    Tensor ye = batch_norm2d(x, gamma, beta, rm, rv, /*training=*/false, 0.1, eps);
    std::vector<double> xv = x.to_vector(), want(8);
    const double g[2] = {2, 0.5}, b[2] = {1, -1};
    for (int i = 0; i < 8; ++i) {
      const int c = (i / 2) % 2;
      want[i] = (xv[i] - m[c]) / std::sqrt(v[c] + eps) * g[c] + b[c];
    }
    require_close(ye.to_vector(), want, tol);
    REQUIRE(rm.to_vector() == m);
    REQUIRE(rv.to_vector() == v);
  }
}

TEST_CASE("batch_norm2d: no affine, no running stats, momentum 1", "[ops][batch_norm]") {
  Tensor x = hand_input(), none_g, none_b, none_m, none_v;
  Tensor y = batch_norm2d(x, none_g, none_b, none_m, none_v, true, 0.1, 0.0);
  const double r2 = std::sqrt(2.0);
  require_close(y.to_vector(), {-1, 1, -r2, r2, -1, 1, 0, 0}, 1e-12);
  // momentum 1: the running stats become the batch stats (unbiased variance).
  Tensor rm = Tensor::zeros({2}, DType::f64), rv = Tensor::full({2}, 1.0, DType::f64);
  batch_norm2d(x, none_g, none_b, rm, rv, true, 1.0, 0.0);
  require_close(rm.to_vector(), {2, 6}, 1e-12);
  require_close(rv.to_vector(), {4.0 / 3, 32.0 / 3}, 1e-12);
}

// The per-op gradient checks (training and eval, affine or not, batch 1) are in the op table
// (tests/ops/test_op_table.cpp); this one chains two batch norms.
TEST_CASE("batch_norm2d: gradient check through two batch norms in float64", "[ops][batch_norm][gradcheck]") {
  Tensor none;
  Tensor x = rand_leaf({2, 2, 3, 2}, 31), g1 = rand_leaf({2}, 32), b1 = rand_leaf({2}, 33);
  Tensor rm = Tensor::zeros({2}, DType::f64), rv = Tensor::full({2}, 1.0, DType::f64);
  // The eval layer has its own buffers: the training layer moves rm/rv on every call.
  Tensor rm2 = Tensor::from_vector({0.1, -0.4}, {2}, DType::f64),
         rv2 = Tensor::from_vector({1.3, 0.6}, {2}, DType::f64);
  auto f = [&] {
    Tensor h = batch_norm2d(x, g1, b1, rm, rv, true);
    return batch_norm2d(h, none, none, rm2, rv2, false);
  };
  REQUIRE_GRADCHECK(gradcheck(f, {x, g1, b1}));
}

TEST_CASE("batch_norm2d_relu: equals relu(batch_norm2d) forward and backward, gradient check", "[ops][batch_norm]") {
  for (bool training : {true, false}) {
    for (bool affine : {true, false}) {
      INFO("training " << training << ", affine " << affine);
      Tensor x = rand_leaf({3, 2, 2, 3}, 31);
      Tensor gamma = affine ? rand_leaf({2}, 32) : Tensor(), beta = affine ? rand_leaf({2}, 33) : Tensor();
      Tensor rm1 = Tensor::from_vector({0.3, -0.2}, {2}, DType::f64),
             rv1 = Tensor::from_vector({0.8, 1.7}, {2}, DType::f64);
      Tensor rm2 = rm1.clone(), rv2 = rv1.clone();
      // Fused against composed: same values, same gradients, same running statistics.
      Tensor y1 = batch_norm2d_relu(x, gamma, beta, rm1, rv1, training);
      Tensor gy = rand_leaf(y1.shape(), 34).detach();
      run_backward(y1, gy);
      std::vector<Tensor> g1;
      for (Tensor* t : {&x, &gamma, &beta})
        if (t->defined()) g1.push_back(t->grad().clone()), t->zero_grad();
      Tensor y2 = relu(batch_norm2d(x, gamma, beta, rm2, rv2, training));
      run_backward(y2, gy);
      require_close(y1.to_vector(), y2.to_vector(), 1e-15);
      const std::vector<double> v1 = y1.to_vector();
      REQUIRE(*std::min_element(v1.begin(), v1.end()) == 0.0);  // some outputs were clipped
      size_t i = 0;
      for (Tensor* t : {&x, &gamma, &beta})
        if (t->defined()) require_close(t->grad().to_vector(), g1[i++].to_vector(), 1e-14);
      require_close(rm1.to_vector(), rm2.to_vector(), 0.0);
      require_close(rv1.to_vector(), rv2.to_vector(), 0.0);
      auto f = [&] { return batch_norm2d_relu(x, gamma, beta, rm1, rv1, training, 0.1, 1e-5); };
      REQUIRE_GRADCHECK(gradcheck(f, affine ? std::vector<Tensor>{x, gamma, beta} : std::vector<Tensor>{x}));
    }
  }
}

TEST_CASE("batch_norm2d: gradients only where asked", "[ops][batch_norm]") {
  Tensor x = rand_leaf({2, 2, 2, 2}, 41);
  Tensor gamma = Tensor::from_vector({1.5, 0.5}, {2}, DType::f64);  // no requires_grad
  Tensor beta = rand_leaf({2}, 42);
  Tensor rm = Tensor::zeros({2}, DType::f64), rv = Tensor::full({2}, 1.0, DType::f64);
  Tensor y = batch_norm2d(x, gamma, beta, rm, rv, true);
  run_backward(y, Tensor::full(y.shape(), 1.0, DType::f64));
  REQUIRE(x.grad().defined());
  REQUIRE_FALSE(gamma.grad().defined());
  // dbeta = sum of gy per channel = 8 values of 1; dx of a constant gy is 0 in training (mean removed).
  require_close(beta.grad().to_vector(), {8, 8}, 1e-12);
  for (double v : x.grad().to_vector()) REQUIRE(std::abs(v) < 1e-12);
}

TEST_CASE("batch_norm2d: bad input names the problem", "[ops][batch_norm]") {
  Tensor none;
  Tensor x = Tensor::zeros({2, 2, 1, 2}, DType::f64);
  Tensor g2 = Tensor::full({2}, 1.0, DType::f64), g3 = Tensor::full({3}, 1.0, DType::f64);
  Tensor rm = Tensor::zeros({2}, DType::f64), rv = Tensor::full({2}, 1.0, DType::f64);
  Tensor rv3 = Tensor::full({3}, 1.0, DType::f64);
  Tensor x3 = Tensor::zeros({2, 2, 4}, DType::f64);
  REQUIRE_THROWS_WITH(batch_norm2d(x3, g2, none, rm, rv, true),
                      Catch::Contains("batch_norm2d: expected x (N, C, H, W) with 4 dimensions, got [2, 2, 4]"));
  REQUIRE_THROWS_WITH(batch_norm2d(x, g3, none, rm, rv, true),
                      Catch::Contains("batch_norm2d: weight (gamma) has shape [3] but x [2, 2, 1, 2] has 2 channels"));
  REQUIRE_THROWS_WITH(batch_norm2d(x, g2, g3, rm, rv, true), Catch::Contains("bias (beta) has shape [3]"));
  REQUIRE_THROWS_WITH(batch_norm2d(x, g2, none, rm, rv3, true), Catch::Contains("running_var has shape [3]"));
  REQUIRE_THROWS_WITH(batch_norm2d(x, g2, none, rm, none, true),
                      Catch::Contains("give both running_mean and running_var, or neither"));
  REQUIRE_THROWS_WITH(batch_norm2d(x, g2, none, none, none, false), Catch::Contains("eval mode"));
  Tensor x1 = Tensor::zeros({1, 2, 1, 1}, DType::f64);
  REQUIRE_THROWS_WITH(
      batch_norm2d(x1, g2, none, rm, rv, true),
      Catch::Contains("expected more than 1 value per channel when training, got x of shape [1, 2, 1, 1]"));
  REQUIRE_NOTHROW(batch_norm2d(x1, g2, none, rm, rv, false));  // eval is fine with a single value
  Tensor gf = Tensor::full({2}, 1.0, DType::f32);
  REQUIRE_THROWS_WITH(batch_norm2d(x, gf, none, rm, rv, true),
                      Catch::Contains("batch_norm2d: weight (gamma) is float32 but x is float64"));
  Tensor xi = Tensor::from_vector({1, 2, 3, 4}, {1, 2, 1, 2}, DType::i32);
  REQUIRE_THROWS_WITH(batch_norm2d(xi, none, none, none, none, true),
                      Catch::Contains("batch_norm2d: x must be float32, float64 or bfloat16, got int32"));
}

TEST_CASE("batch_norm2d: engine switch", "[ops][batch_norm]") {
  REQUIRE(batch_norm_engine() == BatchNormEngine::native);
  if (cudnn_compiled()) {
    set_batch_norm_engine(BatchNormEngine::cudnn);
    // The CPU always runs the native kernels, whichever engine is selected.
    Tensor x = hand_input(), none, rm = Tensor::zeros({2}, DType::f64), rv = Tensor::full({2}, 1.0, DType::f64);
    Tensor y = batch_norm2d(x, none, none, rm, rv, true, 0.1, 0.0);
    set_batch_norm_engine(BatchNormEngine::native);
    require_close(y.to_vector(), {-1, 1, -std::sqrt(2.0), std::sqrt(2.0), -1, 1, 0, 0}, 1e-12);
  } else {
    REQUIRE_THROWS_WITH(set_batch_norm_engine(BatchNormEngine::cudnn),
                        Catch::Contains("set_batch_norm_engine: cuDNN was asked for, but this engine was built without "
                                        "cuDNN"));
    REQUIRE(batch_norm_engine() == BatchNormEngine::native);
  }
}
