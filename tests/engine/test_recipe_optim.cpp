// The optimizer side of the training recipe: weight-decay parameter groups (--no-wd-bn) and the weight EMA
// (--ema).
#include <catch2/catch.hpp>
#include <set>

#include "engine/device.h"
#include "engine/nn.h"
#include "engine/optim/ema.h"
#include "engine/optim/param_groups.h"
#include "models/registry.h"
#include "tests/gradcheck.h"

using namespace engine;

namespace {
std::set<std::string> names_of(const nn::NamedTensors& named) {
  std::set<std::string> out;
  for (const auto& [name, t] : named) out.insert(name);
  return out;
}

// Linear 2 -> 2 (weight, bias) and a BatchNorm over 2 channels (weight, bias, running statistics), in float64.
struct Tiny : nn::Module {
  Tiny() {
    fc = register_module("fc", std::make_shared<nn::Linear>(2, 2));
    bn = register_module("bn", std::make_shared<nn::BatchNorm2d>(2));
    to(DType::f64);
  }
  Tensor forward(const Tensor& x) override { return (*fc)(x); }
  std::shared_ptr<nn::Linear> fc;
  std::shared_ptr<nn::BatchNorm2d> bn;
};

void set_values(Tensor& t, const std::vector<double>& v) { t.copy_(Tensor::from_vector(v, t.shape(), t.dtype())); }
}  // namespace

TEST_CASE("param groups: --no-wd-bn takes every BN parameter and bias of a ResNet out of the decay", "[optim]") {
  // torchvision's resnet18: 20 convolutions and fc.weight decay; 20 BatchNorms (x2) and fc.bias do not.
  auto r18 = models::create("resnet18");
  optim::DecaySplit s = optim::split_weight_decay(*r18);
  REQUIRE(s.decay.size() == 21);
  REQUIRE(s.no_decay.size() == 41);
  REQUIRE(s.decay.size() + s.no_decay.size() == r18->named_parameters().size());
  const std::set<std::string> decay = names_of(s.decay), no_decay = names_of(s.no_decay);
  for (const char* n : {"conv1.weight", "layer1.0.conv2.weight", "layer2.0.downsample.0.weight", "fc.weight"})
    CHECK(decay.count(n));
  for (const char* n : {"bn1.weight", "bn1.bias", "layer3.1.bn2.weight", "layer4.0.downsample.1.bias", "fc.bias"})
    CHECK(no_decay.count(n));
  for (const auto& [name, t] : s.decay) CHECK((t.dim() == 4 || name == "fc.weight"));
  for (const auto& [name, t] : s.no_decay) CHECK(t.dim() == 1);

  // The CIFAR resnet20 (option-A shortcuts, no downsample convolutions): 19 convolutions + fc.weight, 19 BNs.
  auto r20 = models::create("resnet20");
  s = optim::split_weight_decay(*r20);
  REQUIRE(s.decay.size() == 20);
  REQUIRE(s.no_decay.size() == 39);

  auto groups = optim::weight_decay_groups(*r18, 5e-4, true);
  REQUIRE(groups.size() == 2);
  REQUIRE(groups[0].weight_decay == 5e-4);
  REQUIRE(groups[0].params.size() == 21);
  REQUIRE(groups[1].weight_decay == 0.0);
  REQUIRE(groups[1].params.size() == 41);
  groups = optim::weight_decay_groups(*r18, 5e-4, false);
  REQUIRE(groups.size() == 1);
  REQUIRE(groups[0].params.size() == 62);
}

TEST_CASE("param groups: a step with decay leaves the no-decay group's update free of it", "[optim]") {
  for (bool momentum : {false, true}) {
    INFO("momentum " << momentum);
    Tiny m;
    set_values(m.fc->weight, {1, 2, 3, 4});
    set_values(m.fc->bias, {1, 2});
    set_values(m.bn->weight, {1, 2});
    set_values(m.bn->bias, {1, 2});
    const double lr = 0.1, wd = 0.01, mom = momentum ? 0.9 : 0.0;
    optim::SGD sgd(optim::weight_decay_groups(m, wd, true), {lr, mom, 0.0, false});
    REQUIRE(sgd.params().size() == 4);
    REQUIRE(sgd.params()[0].same(m.fc->weight));  // the decayed group comes first
    REQUIRE(sgd.weight_decay_of(0) == wd);
    for (size_t i = 1; i < 4; ++i) REQUIRE(sgd.weight_decay_of(i) == 0.0);
    // Two steps with gradient 0.5 everywhere; by hand: g' = g + wd_i w, buf = g' then mom buf + g', w -= lr buf.
    auto expect = [&](double w0, double decay) {
      double w = w0, buf = 0;
      for (int step = 0; step < 2; ++step) {
        const double g = 0.5 + decay * w;
        buf = step == 0 || mom == 0 ? g : mom * buf + g;
        w -= lr * buf;
      }
      return w;
    };
    for (int step = 0; step < 2; ++step) {
      for (const Tensor& p : sgd.params()) {
        Tensor q = p;
        q.set_grad(Tensor::full(p.shape(), 0.5, DType::f64));
      }
      sgd.step();
    }
    const std::vector<double> w = m.fc->weight.to_vector();
    for (int i = 0; i < 4; ++i) REQUIRE(w[i] == Approx(expect(i + 1, wd)).epsilon(1e-14));
    for (const Tensor* t : {&m.fc->bias, &m.bn->weight, &m.bn->bias}) {
      const std::vector<double> v = t->to_vector();
      for (int i = 0; i < 2; ++i) REQUIRE(v[i] == Approx(expect(i + 1, 0.0)).epsilon(1e-14));
    }
    // And without --no-wd-bn the same biases do decay (the check above can tell the two apart).
    REQUIRE(expect(2, 0.0) != Approx(expect(2, wd)).epsilon(1e-14));
  }
}

TEST_CASE("EMA: ema = decay * ema + (1 - decay) * w for parameters and BN statistics, exactly", "[optim][ema]") {
  Tiny m;
  set_values(m.fc->weight, {1, 2, 3, 4});
  set_values(m.bn->running_mean, {0.5, -0.5});
  optim::ModelEma ema(m, 0.75);
  REQUIRE(ema.tensors().size() == 6);  // fc.weight, fc.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var
  auto get = [&](const std::string& name) {
    for (const auto& [n, t] : ema.tensors())
      if (n == name) return t.to_vector();
    FAIL("no average " << name);
    return std::vector<double>{};
  };
  REQUIRE(get("fc.weight") == std::vector<double>{1, 2, 3, 4});  // starts as a copy

  set_values(m.fc->weight, {5, 6, 7, 8});
  set_values(m.bn->running_mean, {1.5, 2.5});
  ema.update(m);
  // 0.75 and 0.25 are exact in binary: every value below is exact, so == is the test.
  REQUIRE(get("fc.weight") ==
          std::vector<double>{0.75 * 1 + 0.25 * 5, 0.75 * 2 + 0.25 * 6, 0.75 * 3 + 0.25 * 7, 0.75 * 4 + 0.25 * 8});
  REQUIRE(get("bn.running_mean") == std::vector<double>{0.75 * 0.5 + 0.25 * 1.5, 0.75 * -0.5 + 0.25 * 2.5});
  REQUIRE(get("bn.running_var") == std::vector<double>{1, 1});  // unchanged weights: unchanged averages
  set_values(m.fc->weight, {0, 0, 0, 0});
  ema.update(m);
  REQUIRE(get("fc.weight") == std::vector<double>{0.75 * 2, 0.75 * 3, 0.75 * 4, 0.75 * 5});
  // An inexact decay: the same expression as the kernel's, in float64.
  optim::ModelEma e2(m, 0.999);
  set_values(m.fc->weight, {1, 1, 1, 1});
  e2.update(m);
  REQUIRE(e2.tensors()[0].second.to_vector()[0] == 0.999 * 0.0 + (1.0 - 0.999) * 1.0);
  REQUIRE_THROWS_WITH(optim::ModelEma(m, 1.0), Catch::Contains("must lie in [0, 1)"));
}

TEST_CASE("EMA: the scope evaluates with the averages and restores the model's own tensors", "[optim][ema]") {
  Tiny m;
  set_values(m.fc->weight, {1, 2, 3, 4});
  set_values(m.fc->bias, {0, 0});
  optim::ModelEma ema(m, 0.5);
  set_values(m.fc->weight, {3, 4, 5, 6});
  ema.update(m);  // averages 2, 3, 4, 5
  const Tensor x = Tensor::from_vector({1, 0}, {1, 2}, DType::f64);
  optim::SGD sgd(m.parameters(), {0.1, 0.0, 0.0, false});
  {
    optim::EmaScope scope(&ema, m);
    REQUIRE(m(x).to_vector() == std::vector<double>{2, 4});  // y = W x with the averages
  }
  REQUIRE(m(x).to_vector() == std::vector<double>{3, 5});  // the model's own weights again
  // The optimizer still updates the tensors the model uses.
  for (const Tensor& p : sgd.params()) {
    Tensor q = p;
    q.set_grad(Tensor::full(p.shape(), 10.0, DType::f64));
  }
  sgd.step();
  REQUIRE(m(x).to_vector() == std::vector<double>{2 - 1, 4 - 1});
  { optim::EmaScope none(nullptr, m); }  // no EMA: nothing swapped
  REQUIRE(m.fc->weight.to_vector()[0] == 2);
}

TEST_CASE("CUDA: the EMA update agrees with the CPU", "[cuda][optim][ema]") {
  SKIP_WITHOUT_CUDA();
  Tiny cpu, gpu;
  set_values(cpu.fc->weight, {1, 2, 3, 4});
  cpu.to(DType::f32);
  gpu.to(DType::f32);
  for (const auto& [name, t] : cpu.named_parameters()) gpu.find(name).copy_(t);
  gpu.to(Device::cuda());
  optim::ModelEma ec(cpu, 0.9), eg(gpu, 0.9);
  set_values(cpu.fc->weight, {-1, 0.5, 7, 9});
  set_values(gpu.fc->weight, {-1, 0.5, 7, 9});
  ec.update(cpu);
  eg.update(gpu);
  for (size_t i = 0; i < ec.tensors().size(); ++i) {
    INFO(ec.tensors()[i].first);
    REQUIRE(eg.tensors()[i].second.is_cuda());
    // One rounding apart at most (nvcc may fuse keep * e + take * w into an FMA).
    REQUIRE(testing::close_ratio(eg.tensors()[i].second.to(Device::cpu()), ec.tensors()[i].second, 1e-7, 1e-6) <= 1);
  }
}
