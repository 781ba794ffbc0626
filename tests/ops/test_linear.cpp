// linear on the CPU: values by hand (forward and the three gradients), float32 against float64, bad arguments.
// The float64 gradient checks are in the op table (tests/ops/test_op_table.cpp).
#include <catch2/catch.hpp>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "tests/gradcheck.h"

using namespace engine;
using testing::rand_leaf;

TEST_CASE("linear: forward and backward by hand", "[ops][linear]") {
  // x [2, 3], W [2, 3], b [2]: y = x W^T + b.
  Tensor x = Tensor::from_vector({1, 2, 3, -1, 0, 2}, {2, 3}, DType::f64).set_requires_grad(true);
  Tensor w = Tensor::from_vector({1, 0, -1, 2, 1, 0.5}, {2, 3}, DType::f64).set_requires_grad(true);
  Tensor b = Tensor::from_vector({10, -10}, {2}, DType::f64).set_requires_grad(true);
  Tensor y = linear(x, w, b);
  REQUIRE(y.shape() == Shape{2, 2});
  // row 0: [1-3, 2+2+1.5] + b = [8, -4.5]; row 1: [-1-2, -2+0+1] + b = [7, -11]
  REQUIRE(y.to_vector() == std::vector<double>{8, -4.5, 7, -11});
  REQUIRE(linear(x, w, Tensor()).to_vector() == std::vector<double>{-2, 5.5, -3, -1});

  // g = [[1, 0], [0, 2]]: gx = g W, gW = g^T x, gb = column sums of g.
  run_backward(y, Tensor::from_vector({1, 0, 0, 2}, {2, 2}, DType::f64));
  REQUIRE(x.grad().to_vector() == std::vector<double>{1, 0, -1, 4, 2, 1});
  REQUIRE(w.grad().to_vector() == std::vector<double>{1, 2, 3, -2, 0, 4});
  REQUIRE(b.grad().to_vector() == std::vector<double>{1, 2});
}

TEST_CASE("linear: float32 matches float64", "[ops][linear]") {
  Tensor x = rand_leaf({5, 7}, 1), w = rand_leaf({4, 7}, 2), b = rand_leaf({4}, 3);
  Tensor y64 = linear(x, w, b);
  Tensor y32 = linear(x.detach().to(DType::f32), w.detach().to(DType::f32), b.detach().to(DType::f32));
  REQUIRE(testing::close_ratio(y32, y64, 1e-5, 1e-5) <= 1);
}

TEST_CASE("linear: bad arguments name the op and the shapes", "[ops][linear]") {
  REQUIRE_THROWS_WITH(
      linear(Tensor::zeros({2, 5}), Tensor::zeros({3, 4}), Tensor()),
      Catch::Contains("linear: input has 5 features but weight expects 4 (input [2, 5], weight [3, 4])"));
  REQUIRE_THROWS_WITH(linear(Tensor::zeros({2, 3, 4}), Tensor::zeros({3, 4}), Tensor()),
                      Catch::Contains("linear: expected input with 2 dimensions, got [2, 3, 4]"));
  REQUIRE_THROWS_WITH(linear(Tensor::zeros({2, 4}), Tensor::zeros({3, 4}), Tensor::zeros({4})),
                      Catch::Contains("linear: bias [4] must have one element per output feature, [3]"));
  REQUIRE_THROWS_WITH(linear(Tensor::zeros({2, 4}), Tensor::zeros({3, 4}), Tensor::zeros({3}, DType::f64)),
                      Catch::Contains("linear: bias is float64 but input is float32"));
}
