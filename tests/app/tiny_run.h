// A tiny training run for the trainer tests: a network with every kind of checkpoint state, synthetic data and a
// configuration that exercises the whole loop in well under a second.
#pragma once
#include <catch2/catch.hpp>
#include <cstdio>
#include <memory>
#include <string>

#include "apps/common/trainer.h"
#include "engine/checkpoint.h"
#include "engine/nn/layers.h"
#include "engine/random.h"
#include "tests/app/app_test_util.h"

namespace apptest {

// conv -> BN -> ReLU -> max pool -> linear at 14 px: every kind of state a checkpoint must carry (weights, BN
// running statistics, momentum), small enough for a few epochs in a second.
// Without BN (child "1" is then an identity ReLU), nothing moves when the learning rate is ~0.
inline std::shared_ptr<engine::nn::Module> tiny_net(uint64_t seed, bool batch_norm = true) {
  engine::default_generator().seed(seed);
  using namespace engine::nn;
  std::shared_ptr<Module> norm = batch_norm ? std::shared_ptr<Module>(std::make_shared<BatchNorm2d>(4))
                                            : std::shared_ptr<Module>(std::make_shared<ReLU>());
  return std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
      std::make_shared<Conv2d>(1, 4, 3, 1, 1, false), norm, std::make_shared<ReLU>(), std::make_shared<MaxPool2d>(2, 2),
      std::make_shared<Flatten>(), std::make_shared<Linear>(4 * 7 * 7, 10)});
}

inline app::FashionMnist tiny_data() {
  app::FashionMnist d;
  d.train = apptest::synthetic_images(64, 1);
  d.test = apptest::synthetic_images(32, 2);
  return d;
}

inline app::TrainConfig tiny_config(const std::string& out) {
  app::TrainConfig c;
  c.model = "tiny";
  c.lr = 0.05;
  c.epochs = 3;
  c.batch_size = 16;
  c.nesterov = true;
  c.schedule = "cosine";
  c.warmup_epochs = 0.5;
  c.label_smoothing = 0.1;
  c.augment = true;
  c.normalize = true;
  c.resize = 14;
  c.val_split = 0.25;  // 48 training examples: 3 steps per epoch
  c.device = "cpu";
  c.seed = 11;
  c.out = out;
  return c;
}

inline app::TrainHooks quiet() {
  app::TrainHooks h;
  h.progress = false;
  h.log = nullptr;
  h.plots = false;
  return h;
}

// A run of tiny_net(seed) on tiny_data() with its log lines (TrainHooks::log) kept as one string.
struct LoggedRun {
  app::TrainResult result;
  std::string log;
};

inline LoggedRun run_logged(const app::TrainConfig& cfg, uint64_t seed) {
  app::TrainHooks hooks = quiet();
  std::FILE* f = std::tmpfile();
  REQUIRE(f != nullptr);
  hooks.log = f;
  LoggedRun r;
  r.result = app::train(cfg, tiny_net(seed), tiny_data(), hooks);
  std::fflush(f);
  std::rewind(f);
  char buf[4096];
  std::size_t got = 0;
  while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) r.log.append(buf, got);
  std::fclose(f);
  return r;
}

// Two safetensors files hold the same tensor names with byte-identical contents (or, with shapes_only, the same
// shapes).
inline void require_same_tensors(const std::string& a, const std::string& b, bool shapes_only = false) {
  engine::SafetensorsFile fa = engine::read_safetensors(a), fb = engine::read_safetensors(b);
  REQUIRE(fa.tensors.size() == fb.tensors.size());
  for (const auto& [name, t] : fa.tensors) {
    INFO(name);
    const engine::StoredTensor* u = fb.find(name);
    REQUIRE(u);
    REQUIRE(u->shape == t.shape);
    if (!shapes_only) REQUIRE(u->bytes == t.bytes);
  }
}

}  // namespace apptest
