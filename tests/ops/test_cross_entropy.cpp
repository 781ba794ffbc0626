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
// Row 0: equal logits (softmax 1/3 each), label 1. Row 1: log(1), log(3), log(6) (softmax 0.1, 0.3, 0.6), label 2.
Tensor hand_logits(DType dtype = DType::f64, double shift = 0) {
  return Tensor::from_vector({shift, shift, shift, std::log(1.0) + shift, std::log(3.0) + shift, std::log(6.0) + shift},
                             {2, 3}, dtype);
}
Tensor hand_labels() { return Tensor::from_vector({1, 2}, {2}, DType::i32); }

}  // namespace

TEST_CASE("cross_entropy: loss and gradient by hand", "[ops][cross_entropy]") {
  for (DType dtype : {DType::f64, DType::f32}) {
    const double tol = dtype == DType::f64 ? 1e-12 : 1e-6;
    SECTION(std::string("no smoothing, ") + dtype_name(dtype)) {
      Tensor z = hand_logits(dtype);
      z.set_requires_grad(true);
      Tensor loss = cross_entropy(z, hand_labels());
      REQUIRE(loss.shape() == Shape{});
      REQUIRE(loss.numel() == 1);
      // (log 3 - log 0.6) / 2 = log(5) / 2.
      REQUIRE(std::abs(loss.item() - std::log(5.0) / 2) < tol);
      loss.backward();
      const double t = 1.0 / 3;
      require_close(z.grad().to_vector(), {t / 2, (t - 1) / 2, t / 2, 0.1 / 2, 0.3 / 2, -0.4 / 2}, tol);
    }
    SECTION(std::string("label smoothing 0.3, ") + dtype_name(dtype)) {
      // target = 0.7 * onehot + 0.1.
      Tensor z = hand_logits(dtype);
      z.set_requires_grad(true);
      Tensor loss = cross_entropy(z, hand_labels(), 0.3);
      const double row1 = -(0.1 * std::log(0.1) + 0.1 * std::log(0.3) + 0.8 * std::log(0.6));
      REQUIRE(std::abs(loss.item() - (std::log(3.0) + row1) / 2) < tol);
      loss.backward();
      const double t = 1.0 / 3;
      require_close(z.grad().to_vector(),
                    {(t - 0.1) / 2, (t - 0.8) / 2, (t - 0.1) / 2, 0.0 / 2, (0.3 - 0.1) / 2, (0.6 - 0.8) / 2}, tol);
    }
  }
  SECTION("stable for large logits: shifting every logit by 1000 changes nothing") {
    Tensor loss = cross_entropy(hand_logits(DType::f32, 1000.0), hand_labels());
    REQUIRE(std::isfinite(loss.item()));
    REQUIRE(loss.item() == Approx(std::log(5.0) / 2).epsilon(1e-4));
  }
  SECTION("the incoming gradient scales the saved one") {
    Tensor z = hand_logits();
    z.set_requires_grad(true);
    scale(cross_entropy(z, hand_labels()), -3.0).backward();
    REQUIRE(z.grad().to_vector()[5] == Approx(-3.0 * -0.4 / 2));
  }
  SECTION("no grad recorded when logits do not require it") {
    Tensor loss = cross_entropy(hand_logits(), hand_labels());
    REQUIRE_FALSE(loss.requires_grad());
  }
}

TEST_CASE("cross_entropy: gradient check in float64", "[ops][cross_entropy][gradcheck]") {
  Tensor z = rand_leaf({4, 5}, 51);
  Tensor labels = Tensor::from_vector({0, 3, 4, 1}, {4}, DType::i32);
  REQUIRE_GRADCHECK(gradcheck([&] { return cross_entropy(z, labels); }, {z}));
  REQUIRE_GRADCHECK(gradcheck([&] { return cross_entropy(z, labels, 0.1); }, {z}));
  Tensor z1 = rand_leaf({1, 7}, 52);
  Tensor l1 = Tensor::from_vector({6}, {1}, DType::i32);
  REQUIRE_GRADCHECK(gradcheck([&] { return cross_entropy(z1, l1); }, {z1}));
  REQUIRE_GRADCHECK(gradcheck([&] { return cross_entropy(z1, l1, 0.25); }, {z1}));
}

TEST_CASE("cross_entropy: bad input names the problem", "[ops][cross_entropy]") {
  Tensor z = Tensor::zeros({3, 5});
  REQUIRE_THROWS_WITH(cross_entropy(z, Tensor::from_vector({0, 1, 5}, {3}, DType::i32)),
                      Catch::Contains("cross_entropy: label 5 at row 2 is outside [0, 5) for logits [3, 5]"));
  REQUIRE_THROWS_WITH(cross_entropy(z, Tensor::from_vector({0, -1, 2}, {3}, DType::i32)),
                      Catch::Contains("cross_entropy: label -1 at row 1 is outside [0, 5)"));
  REQUIRE_THROWS_WITH(cross_entropy(z, Tensor::from_vector({0, 1, 2}, {3}, DType::f32)),
                      Catch::Contains("cross_entropy: labels must be int32 class indices, got float32"));
  REQUIRE_THROWS_WITH(cross_entropy(z, Tensor::from_vector({0, 1}, {2}, DType::i32)),
                      Catch::Contains("cross_entropy: 2 labels for logits [3, 5] (3 rows)"));
  REQUIRE_THROWS_WITH(cross_entropy(Tensor::zeros({3, 5, 1}), Tensor::from_vector({0, 1, 2}, {3}, DType::i32)),
                      Catch::Contains("cross_entropy: expected logits (N, C) with 2 dimensions, got [3, 5, 1]"));
  REQUIRE_THROWS_WITH(cross_entropy(z, Tensor::from_vector({0, 1, 2}, {3}, DType::i32), 1.5),
                      Catch::Contains("label_smoothing must be in [0, 1], got 1.5"));
}
