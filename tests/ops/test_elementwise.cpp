// add, relu, scale, flatten by hand and their error messages; gradient checks, NaN propagation and more shapes
// are in the op table (tests/ops/test_op_table.cpp).
#include <catch2/catch.hpp>
#include <cmath>

#include "engine/ops.h"

using namespace engine;

TEST_CASE("add/relu/scale/flatten: forward values by hand", "[ops][elementwise]") {
  Tensor a = Tensor::from_vector({1, -2, 0.5, 0}, {2, 2});
  Tensor b = Tensor::from_vector({0.5, 1, -1, 2}, {2, 2});
  REQUIRE(add(a, b).to_vector() == std::vector<double>{1.5, -1, -0.5, 2});
  REQUIRE(relu(a).to_vector() == std::vector<double>{1, 0, 0.5, 0});
  REQUIRE(scale(a, -2).to_vector() == std::vector<double>{-2, 4, -1, 0});
  REQUIRE(flatten(Tensor::zeros({2, 3, 4, 5})).shape() == Shape{2, 60});
  // NaN is not hidden by ReLU: a diverging network must show in its loss.
  REQUIRE(std::isnan(relu(Tensor::from_vector({std::nan("")}, {1})).item()));
}

TEST_CASE("add/relu: bad input names the op and the shapes", "[ops][elementwise]") {
  REQUIRE_THROWS_WITH(add(Tensor::zeros({2, 3}), Tensor::zeros({3, 2})),
                      Catch::Contains("add: shapes differ: [2, 3] vs [3, 2]"));
  REQUIRE_THROWS_WITH(add(Tensor::zeros({2}), Tensor::zeros({2}, DType::f64)), Catch::Contains("add: b is float64"));
  REQUIRE_THROWS_WITH(relu(Tensor()), Catch::Contains("relu: x is an undefined tensor"));
}
