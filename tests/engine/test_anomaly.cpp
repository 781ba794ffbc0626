// Detect-anomaly mode: the first NaN or Inf is reported with forward/backward, the op, the module path, the
// tensor, its shape and the first bad index; with the mode off the same faults pass through silently.
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <set>
#include <thread>

#include "apps/common/config.h"
#include "apps/common/trainer.h"
#include "engine/nn.h"
#include "models/registry.h"
#include "tests/app/app_test_util.h"

using namespace engine;

namespace {

// Runs f, which must throw AnomalyError, and returns its message.
std::string anomaly_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const AnomalyError& e) {
    return e.what();
  }
  FAIL("no AnomalyError was thrown");
  return {};
}

bool any_nonfinite(const Tensor& t) {
  for (double v : t.to_vector())
    if (!std::isfinite(v)) return true;
  return false;
}

// Custom ops (f64, CPU) through engine::record: y = x, with `bad` written into the last element of the output
// (forward) or of the input's gradient (backward).
Tensor plant_forward(const Tensor& x, double bad) {
  Tensor y = x.clone();
  y.data<double>()[y.numel() - 1] = bad;
  record(y, "plant_forward", {x}, [](const Tensor& g, const std::vector<bool>&) { return std::vector<Tensor>{g}; });
  return y;
}

Tensor plant_backward(const Tensor& x, double bad) {
  Tensor y = x.clone();
  record(y, "plant_backward", {x}, [bad](const Tensor& g, const std::vector<bool>&) {
    Tensor gx = g.clone();
    gx.data<double>()[gx.numel() - 1] = bad;
    return std::vector<Tensor>{gx};
  });
  return y;
}

class Lambda : public nn::Module {
 public:
  explicit Lambda(std::function<Tensor(const Tensor&)> f) : f_(std::move(f)) {}
  Tensor forward(const Tensor& x) override { return f_(x); }

 private:
  std::function<Tensor(const Tensor&)> f_;
};

// Children run in order under the names given, like torchvision's blocks.
class Named : public nn::Module {
 public:
  Named& add(const std::string& name, std::shared_ptr<nn::Module> m) {
    register_module(name, std::move(m));
    return *this;
  }
  Tensor forward(const Tensor& x) override {
    Tensor y = x;
    for (auto& [name, m] : children()) y = (*m)(y);
    return y;
  }
};

// root: layer1 = Sequential(block), block = conv1, bn1, act (= `act`), so the names read "layer1.0.bn1".
std::shared_ptr<Named> small_model(std::function<Tensor(const Tensor&)> act) {
  auto block = std::make_shared<Named>();
  block->add("conv1", std::make_shared<nn::Conv2d>(3, 3, 3, 1, 1, false))
      .add("bn1", std::make_shared<nn::BatchNorm2d>(3))
      .add("act", std::make_shared<Lambda>(std::move(act)));
  auto root = std::make_shared<Named>();
  root->add("layer1", std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{block}));
  root->to(DType::f64);
  return root;
}

Tensor input() {
  std::vector<double> v(2 * 3 * 4 * 4);
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.7 * static_cast<double>(i));
  return Tensor::from_vector(v, {2, 3, 4, 4}, DType::f64);
}

Tensor ones_like(const Tensor& t) { return Tensor::full(t.shape(), 1.0, t.dtype(), t.device()); }

}  // namespace

TEST_CASE("anomaly: a NaN made in a module's forward names the op and the module path", "[anomaly]") {
  auto model = small_model([](const Tensor& x) { return plant_forward(x, NAN); });
  {
    DetectAnomalyGuard on;
    const std::string msg = anomaly_message([&] { (*model)(input()); });
    CHECK_THAT(msg, Catch::StartsWith("detect-anomaly: forward: op 'plant_forward' in module 'layer1.0.act'") &&
                        Catch::Contains("float64[2, 3, 4, 4] has nan at [1, 2, 3, 3] (1 of 96 values") &&
                        Catch::Contains("its inputs are finite, so the value appeared in this op"));
  }
  // Off (the default): nothing is checked, the NaN reaches the output.
  REQUIRE_FALSE(detect_anomaly());
  Tensor y;
  REQUIRE_NOTHROW(y = (*model)(input()));
  REQUIRE(std::isnan(y.to_vector().back()));
}

TEST_CASE("anomaly: Inf as well as NaN, the module paths are those of named_parameters()", "[anomaly]") {
  auto model = small_model([](const Tensor& x) { return plant_forward(x, -INFINITY); });
  DetectAnomalyGuard on;
  CHECK_THAT(anomaly_message([&] { (*model)(input()); }),
             Catch::Contains("'layer1.0.act'") && Catch::Contains("has -inf at [1, 2, 3, 3]"));
  std::set<std::string> names;
  for (const auto& [name, t] : model->named_parameters()) names.insert(name);
  for (const char* p : {"layer1.0.conv1", "layer1.0.bn1"}) CHECK(names.count(std::string(p) + ".weight") == 1);
}

TEST_CASE("anomaly: a non-finite parameter or buffer is named with the op that read it", "[anomaly]") {
  DetectAnomalyGuard on;
  SECTION("a conv weight in training") {
    auto model = small_model([](const Tensor& x) { return x; });
    model->find("layer1.0.conv1.weight").data<double>()[5] = NAN;
    CHECK_THAT(
        anomaly_message([&] { (*model)(input()); }),
        Catch::Contains("forward: op 'conv2d' in module 'layer1.0.conv1'") &&
            Catch::Contains("input 1 of 3 was already non-finite: float64[3, 3, 3, 3] has nan at [0, 0, 1, 2]") &&
            Catch::Contains("; layer1.0.conv1.weight is non-finite"));
  }
  SECTION("BN's running variance in eval, without grad") {
    auto model = small_model([](const Tensor& x) { return x; });
    model->eval();
    NoGradGuard no_grad;
    model->find("layer1.0.bn1.running_var").data<double>()[1] = NAN;
    CHECK_THAT(anomaly_message([&] { (*model)(input()); }),
               Catch::Contains("forward: op 'batch_norm2d' in module 'layer1.0.bn1'") &&
                   Catch::Contains("; layer1.0.bn1.running_var is non-finite: float64[3] has nan at [1]"));
    // A negative variance is finite: the NaN of its square root appears in the op.
    model->find("layer1.0.bn1.running_var").data<double>()[1] = -1.0;
    const std::string msg = anomaly_message([&] { (*model)(input()); });
    CHECK_THAT(msg, Catch::Contains("op 'batch_norm2d' in module 'layer1.0.bn1'") &&
                        Catch::Contains("has nan at [0, 1, 0, 0]") && Catch::Contains("its inputs are finite"));
    CHECK_THAT(msg, !Catch::Contains("is non-finite:"));
  }
}

TEST_CASE("anomaly: a backward returning NaN or Inf names the op and the module it was recorded in", "[anomaly]") {
  const double bad = GENERATE(double(NAN), double(INFINITY));
  auto model = small_model([bad](const Tensor& x) { return plant_backward(x, bad); });
  {
    DetectAnomalyGuard on;
    Tensor y = (*model)(input());  // the forward is clean
    CHECK_THAT(anomaly_message([&] { run_backward(y, ones_like(y)); }),
               Catch::StartsWith("detect-anomaly: backward: op 'plant_backward' in module 'layer1.0.act' returned a "
                                 "non-finite gradient for input 0 of 1") &&
                   Catch::Contains(std::isnan(bad) ? "has nan at [1, 2, 3, 3]" : "has inf at [1, 2, 3, 3]"));
  }
  // The forward ran with the mode off: the op is still named, its module is not known.
  Tensor y = (*model)(input());
  {
    DetectAnomalyGuard on;
    CHECK_THAT(anomaly_message([&] { run_backward(y, ones_like(y)); }),
               Catch::Contains("op 'plant_backward' (module unknown: detect-anomaly was off when its forward ran)"));
  }
  // Off: the backward completes and the fault spreads into the weights' gradients.
  model->zero_grad();
  y = (*model)(input());
  REQUIRE_NOTHROW(run_backward(y, ones_like(y)));
  REQUIRE(any_nonfinite(model->find("layer1.0.conv1.weight").grad()));
}

TEST_CASE("anomaly: the seed gradient, the loss outside any module and a module's buffers are checked", "[anomaly]") {
  DetectAnomalyGuard on;
  SECTION("seed") {
    Tensor x = input().set_requires_grad(true);
    Tensor y = scale(x, 2.0);
    Tensor seed = ones_like(y);
    seed.data<double>()[3] = NAN;
    CHECK_THAT(
        anomaly_message([&] { run_backward(y, seed); }),
        Catch::Contains("backward: the seed gradient is non-finite: float64[2, 3, 4, 4] has nan at [0, 0, 0, 3]"));
  }
  SECTION("loss without grad (no tape node is made)") {
    NoGradGuard no_grad;
    Tensor logits = Tensor::from_vector({0.1, 0.2, INFINITY, 0.4}, {2, 2}, DType::f64);
    Tensor labels = Tensor::from_vector({0, 1}, {2}, DType::i32);
    CHECK_THAT(anomaly_message([&] { cross_entropy(logits, labels); }),
               Catch::Contains("forward: op 'cross_entropy' outside any module") &&
                   Catch::Contains("input 0 of 1 was already non-finite: float64[2, 2] has inf at [1, 0]"));
  }
  SECTION("a buffer updated in place") {
    class Counter : public nn::Module {
     public:
      Counter() { register_buffer("count", &count); }
      Tensor forward(const Tensor& x) override {
        count.fill_(INFINITY);  // in place, not an op
        return x;
      }
      Tensor count = Tensor::zeros({1}, DType::f64);
    };
    auto root = std::make_shared<Named>();
    root->add("stats", std::make_shared<Counter>());
    CHECK_THAT(anomaly_message([&] { (*root)(input()); }),
               Catch::Contains("forward: buffer stats.count was left non-finite by its module's forward") &&
                   Catch::Contains("float64[1] has inf at [0]"));
  }
  SECTION("reading values is not an op") {
    Tensor t = Tensor::from_vector({1.0, NAN}, {2}, DType::f32);
    REQUIRE_NOTHROW(t.to_vector());
    REQUIRE(detect_anomaly());  // and the read restores the mode
  }
}

TEST_CASE("anomaly: the mode is thread-local and restored by its guard", "[anomaly]") {
  REQUIRE_FALSE(detect_anomaly());
  {
    DetectAnomalyGuard on;
    REQUIRE(detect_anomaly());
    bool other_thread = true;
    std::thread([&] { other_thread = detect_anomaly(); }).join();
    REQUIRE_FALSE(other_thread);
  }
  REQUIRE_FALSE(detect_anomaly());
}

TEST_CASE("anomaly: resnet20 names the BN or conv where a planted NaN appears", "[anomaly][models]") {
  auto model = models::create("resnet20");
  const Tensor x = Tensor::full({2, 1, 28, 28}, 0.5);
  DetectAnomalyGuard on;
  REQUIRE_NOTHROW((*model)(x));  // clean as built

  SECTION("eval: running_var of a BN called through operator(), one fused with relu and one with the join") {
    model->eval();
    NoGradGuard no_grad;
    const auto [bn, op] = GENERATE(std::pair<const char*, const char*>{"bn1", "batch_norm2d"},
                                   std::pair<const char*, const char*>{"layer2.1.bn1", "batch_norm2d_relu"},
                                   std::pair<const char*, const char*>{"layer3.1.bn2", "batch_norm2d_add_relu"});
    model->find(std::string(bn) + ".running_var").data<float>()[7] = NAN;
    CHECK_THAT(anomaly_message([&] { (*model)(x); }),
               Catch::Contains(cat("forward: op '", op, "' in module '", bn, "'")) &&
                   Catch::Contains(cat("; ", bn, ".running_var is non-finite: float32")));
  }
  SECTION("training: one conv weight") {
    model->find("layer3.0.conv1.weight").data<float>()[11] = INFINITY;
    CHECK_THAT(anomaly_message([&] { (*model)(x); }),
               Catch::Contains("forward: op 'conv2d' in module 'layer3.0.conv1'") &&
                   Catch::Contains("; layer3.0.conv1.weight is non-finite: float32[64, 32, 3, 3] has inf at"));
  }
}

TEST_CASE("anomaly: every module's path joined with its own parameter names gives named_parameters()",
          "[anomaly][models]") {
  for (const char* name : {"resnet20", "resnet18"}) {  // resnet18 has downsample Sequentials
    INFO(name);
    auto model = models::create(name);
    std::vector<std::string> joined;
    std::function<void(const nn::Module&)> walk = [&](const nn::Module& m) {
      for (const auto& [n, t] : m.named_parameters())
        if (n.find('.') == std::string::npos) joined.push_back(m.path().empty() ? n : m.path() + "." + n);
      for (const auto& [n, child] : m.children()) walk(*child);
    };
    walk(*model);
    std::vector<std::string> expected;
    for (const auto& [n, t] : model->named_parameters()) expected.push_back(n);
    REQUIRE(joined == expected);
    REQUIRE(model->path().empty());
  }
  // A module outliving its parent forgets it (no dangling name).
  std::shared_ptr<nn::Module> conv;
  {
    auto root = small_model([](const Tensor& x) { return x; });
    conv = root->children()[0].second->children()[0].second->children()[0].second;
    REQUIRE(conv->path() == "layer1.0.conv1");
  }
  REQUIRE(conv->path().empty());
}

TEST_CASE("anomaly: train with detect_anomaly ends as diverged (exit 3) naming the module", "[anomaly][app]") {
  engine::default_generator().seed(3);
  auto make_net = [] {
    return std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
        std::make_shared<nn::Conv2d>(1, 4, 3, 1, 1, false), std::make_shared<nn::BatchNorm2d>(4),
        std::make_shared<nn::ReLU>(), std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(4 * 14 * 14, 10)});
  };
  app::FashionMnist data;
  data.train = apptest::synthetic_images(32, 1);
  data.test = apptest::synthetic_images(16, 2);
  apptest::TempDir dir;
  app::TrainConfig cfg;
  cfg.model = "tiny";
  cfg.epochs = 1;
  cfg.batch_size = 8;
  cfg.resize = 14;
  cfg.device = "cpu";
  cfg.out = dir.str();
  app::TrainHooks hooks;
  hooks.progress = hooks.plots = false;
  hooks.log = nullptr;
  hooks.after_step = [](int64_t, int64_t step, nn::Module& m) {
    if (step == 1) m.find("0.weight").data<float>()[2] = NAN;
  };
  cfg.detect_anomaly = true;
  app::TrainResult r = app::train(cfg, make_net(), data, hooks);
  REQUIRE(r.status == app::TrainStatus::diverged);
  REQUIRE(r.exit_code() == 3);
  CHECK_THAT(r.message, Catch::Contains("detect-anomaly: forward: op 'conv2d' in module '0'") &&
                            Catch::Contains("; 0.weight is non-finite"));
  REQUIRE_FALSE(detect_anomaly());  // train() restores the mode

  // Without the switch the loss check still stops the run, but cannot say where the NaN came from.
  cfg.detect_anomaly = false;
  r = app::train(cfg, make_net(), data, hooks);
  REQUIRE(r.status == app::TrainStatus::diverged);
  CHECK_THAT(r.message, !Catch::Contains("detect-anomaly"));
}

TEST_CASE("anomaly: --detect-anomaly may change on resume and older checkpoints without it still load",
          "[anomaly][app]") {
  app::TrainConfig cfg;
  cfg.model = "resnet20";
  engine::Metadata meta = app::config_to_metadata(cfg);
  REQUIRE(meta.at("config.detect-anomaly") == "false");
  meta.erase("config.detect-anomaly");
  app::TrainConfig saved = app::config_from_metadata(meta, "old.safetensors");
  REQUIRE_FALSE(saved.detect_anomaly);
  meta.erase("config.lr");  // other keys stay required
  REQUIRE_THROWS_WITH(app::config_from_metadata(meta, "old.safetensors"), Catch::Contains("lacks config.lr"));
  app::TrainConfig cli_cfg;
  cli_cfg.detect_anomaly = true;
  REQUIRE(app::merge_for_resume(saved, cli_cfg, {"detect-anomaly"}).detect_anomaly);
}
