// The option-A shortcut op: values by hand, gradient check, bad arguments, CUDA against the CPU.
#include <catch2/catch.hpp>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "tests/gradcheck.h"

using namespace engine;

TEST_CASE("shortcut_a: forward picks every stride-th pixel and pads channels with zeros", "[models][shortcut]") {
  // x: [1, 1, 3, 3] = 0..8; stride 2 keeps rows/cols 0 and 2; 1 input channel -> 3 output, pad_front 1.
  Tensor x = Tensor::from_vector({0, 1, 2, 3, 4, 5, 6, 7, 8}, {1, 1, 3, 3});
  Tensor y = shortcut_a(x, 3, 2, 1);
  REQUIRE(y.shape() == Shape{1, 3, 2, 2});
  REQUIRE(y.to_vector() == std::vector<double>{0, 0, 0, 0, 0, 2, 6, 8, 0, 0, 0, 0});
  // Stride 1, no extra channels: the identity.
  REQUIRE(shortcut_a(x, 1, 1, 0).to_vector() == x.to_vector());
  // Two images, two channels -> four, padded one in front and one behind: channel c lands at c + 1.
  Tensor x2 = Tensor::from_vector({1, 2, 3, 4, 5, 6, 7, 8}, {2, 2, 1, 2});
  REQUIRE(shortcut_a(x2, 4, 2, 1).to_vector() == std::vector<double>{0, 1, 3, 0, 0, 5, 7, 0});
}

TEST_CASE("shortcut_a: backward routes gradients to the kept pixels only", "[models][shortcut][gradcheck]") {
  Tensor x = testing::rand_leaf({2, 3, 5, 4}, 7);
  REQUIRE_GRADCHECK(testing::gradcheck([&] { return shortcut_a(x, 7, 2, 2); }, {x}));
  REQUIRE_GRADCHECK(testing::gradcheck([&] { return shortcut_a(x, 3, 3, 0); }, {x}));
  // By hand: the gradient of sum(y) is 1 at kept pixels (rows/cols 0, 2, 4) and 0 elsewhere.
  Tensor z = testing::rand_leaf({1, 1, 5, 5}, 8);
  Tensor s = shortcut_a(z, 2, 2, 1);
  Tensor ones = Tensor::full(s.shape(), 1.0, DType::f64);
  run_backward(s, ones);
  std::vector<double> g = z.grad().to_vector();
  for (int h = 0; h < 5; ++h)
    for (int w = 0; w < 5; ++w) REQUIRE(g[h * 5 + w] == ((h % 2 == 0 && w % 2 == 0) ? 1.0 : 0.0));
}

TEST_CASE("shortcut_a: bad arguments name the op and the shapes", "[models][shortcut]") {
  REQUIRE_THROWS_WITH(shortcut_a(Tensor::zeros({2, 3}), 4, 2, 0), Catch::Contains("shortcut_a: expected x"));
  REQUIRE_THROWS_WITH(shortcut_a(Tensor::zeros({1, 4, 2, 2}), 6, 2, 3),
                      Catch::Contains("does not fit in 6 output channels"));
  REQUIRE_THROWS_WITH(shortcut_a(Tensor::zeros({1, 4, 2, 2}), 2, 1, 0), Catch::Contains("shortcut_a"));
  REQUIRE_THROWS_WITH(shortcut_a(Tensor::zeros({1, 4, 2, 2}), 4, 0, 0), Catch::Contains("stride must be >= 1"));
}

TEST_CASE("shortcut_a: CUDA matches the CPU exactly, forward and backward", "[models][shortcut][cuda]") {
  SKIP_WITHOUT_CUDA();
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor x = testing::rand_leaf({3, 5, 7, 6}, 11, dt);
    Tensor xc = x.detach().to(Device::cuda()).set_requires_grad(true);
    Tensor y = shortcut_a(x, 9, 2, 2), yc = shortcut_a(xc, 9, 2, 2);
    REQUIRE(yc.to_vector() == y.to_vector());  // a pure copy: bit-identical
    Tensor g = testing::rand_leaf(y.shape(), 12, dt).detach();
    run_backward(y, g);
    run_backward(yc, g.to(Device::cuda()));
    REQUIRE(xc.grad().to_vector() == x.grad().to_vector());
  }
}
