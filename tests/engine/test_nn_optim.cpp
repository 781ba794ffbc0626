#include <catch2/catch.hpp>

#include "engine/nn.h"
#include "kernels/sgd.h"
#include "tests/gradcheck.h"

using namespace engine;

namespace {
// One parameter w = 1 whose gradient is always 0.5.
std::vector<double> run_sgd(optim::SgdOptions opt, int steps) {
  Tensor w = Tensor::from_vector({1.0}, {1}, DType::f64);
  w.set_requires_grad(true);
  optim::SGD sgd({w}, opt);
  std::vector<double> out;
  for (int i = 0; i < steps; ++i) {
    w.set_grad(Tensor::from_vector({0.5}, {1}, DType::f64));
    sgd.step();
    out.push_back(w.item());
  }
  return out;
}
}  // namespace

TEST_CASE("SGD: momentum and weight decay match torch.optim.SGD by hand", "[optim]") {
  // g' = g + wd*w; buf = g' (first step) or 0.9 buf + g'; w -= lr * buf
  auto w = run_sgd({0.1, 0.9, 0.01, false}, 2);
  REQUIRE(w[0] == Approx(0.949).epsilon(1e-12));
  REQUIRE(w[1] == Approx(0.852151).epsilon(1e-12));
  // Nesterov: step = g' + 0.9 buf
  auto n = run_sgd({0.1, 0.9, 0.01, true}, 1);
  REQUIRE(n[0] == Approx(0.9031).epsilon(1e-12));
  // Plain SGD
  auto p = run_sgd({0.1, 0.0, 0.0, false}, 2);
  REQUIRE(p[0] == Approx(0.95));
  REQUIRE(p[1] == Approx(0.90));
}

TEST_CASE("SGD: parameters without a gradient are left alone, bad options are refused", "[optim]") {
  Tensor a = Tensor::from_vector({1.0}, {1}, DType::f64), b = Tensor::from_vector({2.0}, {1}, DType::f64);
  optim::SGD sgd({a, b}, {0.1, 0.9, 0.0, false});
  a.set_grad(Tensor::from_vector({1.0}, {1}, DType::f64));
  sgd.step();
  REQUIRE(a.item() == Approx(0.9));
  REQUIRE(b.item() == 2.0);
  REQUIRE_THROWS_WITH(optim::SGD({a}, {-1.0, 0.9, 0.0, false}), Catch::Contains("must be non-negative"));
  REQUIRE_THROWS_WITH(optim::SGD({a}, {0.1, 0.0, 0.0, true}), Catch::Contains("Nesterov needs momentum"));
  // A gradient set by hand in another dtype is refused by name, not read as the parameter's type, and before any
  // parameter or momentum buffer changes: a fresh optimizer's next good step is its first, from zero momentum.
  optim::SGD fresh({a, b}, {0.1, 0.9, 0.0, false});
  b.set_grad(Tensor::from_vector({1.0}, {1}, DType::f32));
  REQUIRE_THROWS_WITH(fresh.step(),
                      Catch::Contains("SGD: gradient [1] float32 on cpu for parameter [1] float64 on cpu"));
  REQUIRE(a.item() == Approx(0.9));
  REQUIRE(b.item() == 2.0);
  b.zero_grad();
  fresh.step();
  REQUIRE(a.item() == Approx(0.8));  // momentum buffer = the gradient 1 on a first step, whatever was in memory
}

TEST_CASE("SGD: set_lr between steps takes effect, and the kernel reads the rate from the optimizer's tensor",
          "[optim][sgd]") {
  Tensor w = Tensor::from_vector({1.0}, {1}, DType::f32);
  w.set_requires_grad(true);
  optim::SGD sgd({w}, {0.1, 0.0, 0.0, false});
  REQUIRE(sgd.lr_tensor().dtype() == DType::f32);
  REQUIRE(sgd.lr_tensor().device() == w.device());
  REQUIRE(sgd.lr_tensor().item() == static_cast<double>(0.1f));
  auto step = [&] {
    w.set_grad(Tensor::from_vector({0.5}, {1}, DType::f32));
    sgd.step();
    return w.item();
  };
  REQUIRE(step() == static_cast<double>(1.0f - 0.1f * 0.5f));
  sgd.set_lr(0.2);
  REQUIRE(sgd.lr() == 0.2);
  REQUIRE(sgd.lr_tensor().item() == static_cast<double>(0.2f));
  const float after_two = (1.0f - 0.1f * 0.5f) - 0.2f * 0.5f;
  REQUIRE(step() == static_cast<double>(after_two));
  // What the kernel reads is the tensor, not a value passed at launch: written behind set_lr's back, it rules.
  Tensor lr = sgd.lr_tensor();
  lr.fill_(1.0);
  REQUIRE(step() == static_cast<double>(after_two - 0.5f));
  REQUIRE_THROWS_WITH(sgd.set_lr(-1.0), Catch::Contains("must be non-negative"));
  // The kernels themselves refuse a missing rate.
  float wv = 1.f, gv = 1.f;
  kernels::SgdTensor t{&wv, &gv, nullptr, 1};
  REQUIRE_THROWS_WITH(kernels::cpu::sgd_update<float>(&t, 1, kernels::SgdParams{}),
                      Catch::Contains("no learning rate"));
  // A float64 model's rate is float64 (T(lr), as the kernels computed it before).
  Tensor d = Tensor::from_vector({1.0}, {1}, DType::f64);
  optim::SGD sd({d}, {0.1, 0.0, 0.0, false});
  REQUIRE(sd.lr_tensor().dtype() == DType::f64);
  REQUIRE(sd.lr_tensor().item() == 0.1);
}

TEST_CASE("modules: dotted names, train/eval, dtype moves keep leaves", "[nn]") {
  auto seq = std::make_shared<nn::Sequential>();
  seq->push_back(std::make_shared<nn::Linear>(4, 3));
  seq->push_back(std::make_shared<nn::ReLU>());
  seq->push_back(std::make_shared<nn::Linear>(3, 2, false));
  auto names = seq->named_parameters();
  REQUIRE(names.size() == 3);
  REQUIRE(names[0].first == "0.weight");
  REQUIRE(names[1].first == "0.bias");
  REQUIRE(names[2].first == "2.weight");
  REQUIRE(seq->num_parameters() == 4 * 3 + 3 + 3 * 2);
  seq->eval();
  REQUIRE_FALSE(seq->children()[0].second->is_training());
  seq->to(DType::f64);
  REQUIRE(seq->find("0.weight").dtype() == DType::f64);
  REQUIRE(seq->find("0.weight").requires_grad());
  REQUIRE_THROWS_WITH(seq->find("5.weight"), Catch::Contains("no parameter or buffer named"));
}

TEST_CASE("CUDA: elementwise ops, ReLU and SGD agree with the CPU", "[cuda][elementwise][optim]") {
  SKIP_WITHOUT_CUDA();
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor a = testing::rand_leaf({3, 5, 7}, 11, dt), b = testing::rand_leaf({3, 5, 7}, 12, dt);
    Tensor ac = a.detach().to(Device::cuda()).set_requires_grad(true);
    Tensor bc = b.detach().to(Device::cuda()).set_requires_grad(true);
    Tensor y = relu(add(scale(a, 1.5), b)), yc = relu(add(scale(ac, 1.5), bc));
    REQUIRE(testing::close_ratio(yc, y, 1e-12, 1e-6) <= 1);
    Tensor g = testing::rand_leaf({3, 5, 7}, 13, dt).detach();
    run_backward(y, g);
    run_backward(yc, g.to(Device::cuda()));
    REQUIRE(testing::close_ratio(ac.grad(), a.grad(), 1e-12, 1e-6) <= 1);
    REQUIRE(testing::close_ratio(bc.grad(), b.grad(), 1e-12, 1e-6) <= 1);
    // SGD: same three steps on both devices.
    optim::SgdOptions opt{0.1, 0.9, 1e-3, true};
    Tensor w = a.detach().clone().set_requires_grad(true), wc = w.detach().to(Device::cuda()).set_requires_grad(true);
    optim::SGD s({w}, opt), sc({wc}, opt);
    REQUIRE(sc.lr_tensor().is_cuda());
    for (int i = 0; i < 3; ++i) {
      if (i == 2) {  // the rate reaches the CUDA kernel through device memory
        s.set_lr(0.03);
        sc.set_lr(0.03);
      }
      w.set_grad(g);
      wc.set_grad(g.to(Device::cuda()));
      s.step();
      sc.step();
    }
    // nvcc contracts w - lr * (g + wd * w ...) into FMAs and gcc (no -march) does not: in float32 a weight that
    // ends near 0 after cancellation keeps an error of a few ulps of the O(1) terms, hence the absolute 1e-6.
    const double atol = dt == DType::f32 ? 1e-6 : 1e-12;
    REQUIRE(testing::close_ratio(wc, w, atol, 1e-6) <= 1);
  }
}
