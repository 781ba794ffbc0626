#include <catch2/catch.hpp>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "tests/gradcheck.h"

using namespace engine;

TEST_CASE("tensor: factories, shape and values", "[tensor]") {
  Tensor t = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3}, DType::f32);
  REQUIRE(t.shape() == Shape{2, 3});
  REQUIRE(t.numel() == 6);
  REQUIRE(t.size(-1) == 3);
  REQUIRE(t.dtype() == DType::f32);
  REQUIRE(t.to_vector() == std::vector<double>{1, 2, 3, 4, 5, 6});
  REQUIRE(Tensor::zeros({3}).to_vector() == std::vector<double>{0, 0, 0});
  REQUIRE(Tensor::full({2}, 2.5, DType::f64).to_vector() == std::vector<double>{2.5, 2.5});
  REQUIRE_THROWS_WITH(Tensor::from_vector({1, 2}, {3}), Catch::Contains("do not fill shape [3]"));
  REQUIRE_THROWS_WITH(t.size(2), Catch::Contains("has 2 dimensions"));
  REQUIRE_THROWS_WITH(t.item(), Catch::Contains("6 elements"));
}

TEST_CASE("tensor: reshape is a view, -1 is inferred, bad shapes are named", "[tensor]") {
  Tensor t = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3}, DType::f64);
  Tensor v = t.reshape({3, -1});
  REQUIRE(v.shape() == Shape{3, 2});
  v.fill_(7);
  REQUIRE(t.to_vector() == std::vector<double>(6, 7.0));  // shares storage
  REQUIRE_THROWS_WITH(t.reshape({4, -1}), Catch::Contains("cannot view [2, 3]"));
  REQUIRE_THROWS_WITH(t.reshape({5}), Catch::Contains("cannot view [2, 3]"));
}

TEST_CASE("tensor: dtype conversion and clone copy", "[tensor]") {
  Tensor a = Tensor::from_vector({0.5, -1.25}, {2}, DType::f64);
  Tensor b = a.to(DType::f32);
  REQUIRE(b.dtype() == DType::f32);
  REQUIRE(b.to_vector() == std::vector<double>{0.5, -1.25});
  Tensor c = a.clone();
  c.fill_(0);
  REQUIRE(a.to_vector() == std::vector<double>{0.5, -1.25});
  REQUIRE_THROWS_WITH(a.data<float>(), Catch::Contains("tensor is float64, asked for float32"));
  Tensor labels = Tensor::from_vector({3, 1}, {2}, DType::i32);
  REQUIRE(labels.data<int32_t>()[0] == 3);
  REQUIRE(labels.to_vector() == std::vector<double>{3, 1});
}

TEST_CASE("tensor: CUDA without a device is a clear error, never a crash", "[tensor]") {
  if (cuda_available()) return;  // this test is about machines without one
  REQUIRE_THROWS_WITH(Tensor::zeros({2}, DType::f32, Device::cuda()), Catch::Contains("needs CUDA"));
  REQUIRE_THROWS_WITH(resolve_device("cuda"), Catch::Contains("needs CUDA"));
  REQUIRE(resolve_device("auto").is_cpu());
  REQUIRE_THROWS_WITH(Device::parse("gpu"), Catch::Contains("expected cpu, cuda or cuda:N"));
}

TEST_CASE("autograd: chain, accumulation into leaves, shared subexpressions", "[autograd]") {
  Tensor x = Tensor::from_vector({1, -2, 3}, {3}, DType::f64);
  x.set_requires_grad(true);
  // y = relu(x) + 2x (x used twice): dy/dx = [1 + 2, 0 + 2, 1 + 2]
  Tensor y = add(relu(x), scale(x, 2.0));
  run_backward(y, Tensor::full({3}, 1.0, DType::f64));
  REQUIRE(x.grad().to_vector() == std::vector<double>{3, 2, 3});
  // A second graph accumulates (+=) into the same leaf.
  Tensor z = scale(x, 3.0);
  run_backward(z, Tensor::full({3}, 1.0, DType::f64));
  REQUIRE(x.grad().to_vector() == std::vector<double>{6, 5, 6});
  x.zero_grad();
  REQUIRE_FALSE(x.grad().defined());
}

TEST_CASE("autograd: the graph is freed after backward, no_grad records nothing", "[autograd]") {
  Tensor x = Tensor::from_vector({1, 2}, {2}, DType::f64);
  x.set_requires_grad(true);
  Tensor y = relu(x);
  std::weak_ptr<Node> node = y.grad_fn();
  REQUIRE_FALSE(node.expired());
  run_backward(y, Tensor::full({2}, 1.0, DType::f64));
  REQUIRE(y.grad_fn()->inputs.empty());  // saved tensors released
  REQUIRE_THROWS_WITH(run_backward(y, Tensor::full({2}, 1.0, DType::f64)), Catch::Contains("already freed"));
  {
    NoGradGuard ng;
    Tensor z = relu(x);
    REQUIRE_FALSE(z.requires_grad());
    REQUIRE_FALSE(z.grad_fn());
  }
  Tensor w = Tensor::from_vector({1}, {1});
  REQUIRE_THROWS_WITH(w.backward(), Catch::Contains("does not require grad"));
}
