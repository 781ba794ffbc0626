#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>

#include "apps/common/trainer.h"
#include "engine/checkpoint.h"
#include "engine/nn/layers.h"
#include "engine/random.h"
#include "tests/app/app_test_util.h"
#include "tests/app/tiny_run.h"
#include "tests/compare.h"

using engine::Tensor;

using apptest::quiet;
using apptest::tiny_config;
using apptest::tiny_data;
using apptest::tiny_net;

namespace {

void require_same_history(const std::vector<app::EpochRecord>& a, const std::vector<app::EpochRecord>& b) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("epoch " << a[i].epoch);
    REQUIRE(a[i].epoch == b[i].epoch);
    REQUIRE(a[i].train_loss == b[i].train_loss);
    REQUIRE(a[i].train_acc == b[i].train_acc);
    REQUIRE(a[i].val_loss == b[i].val_loss);
    REQUIRE(a[i].val_acc == b[i].val_acc);
    REQUIRE(a[i].test_loss == b[i].test_loss);
    REQUIRE(a[i].test_acc == b[i].test_acc);
    REQUIRE(a[i].lr == b[i].lr);
  }
}

}  // namespace

TEST_CASE("trainer: Ctrl-C mid-epoch then --resume ends exactly like an uninterrupted run", "[app][trainer]") {
  apptest::TempDir dir;
  const app::FashionMnist data = tiny_data();
  app::clear_interrupt();

  app::TrainResult full = app::train(tiny_config(dir / "full"), tiny_net(5), data, quiet());
  REQUIRE(full.status == app::TrainStatus::finished);
  REQUIRE(full.history.size() == 3);
  REQUIRE(full.history.back().train_loss < full.history.front().train_loss);  // it learns
  for (const char* f : {"config.json", "metrics.csv", "metrics.jsonl", "last.safetensors", "best.safetensors"})
    REQUIRE(std::filesystem::exists(dir / ("full/" + std::string(f))));

  // Interrupted in the middle of epoch 2 (after step 2 of 3), resumed into a differently initialised net.
  app::TrainHooks hooks = quiet();
  hooks.after_step = [](int64_t e, int64_t s, engine::nn::Module&) {
    if (e == 1 && s == 1) app::request_interrupt();
  };
  app::TrainResult part = app::train(tiny_config(dir / "cut"), tiny_net(5), data, hooks);
  app::clear_interrupt();
  REQUIRE(part.status == app::TrainStatus::interrupted);
  REQUIRE(part.exit_code() == 130);
  REQUIRE_THAT(part.message, Catch::Contains("epoch 2/3 step 2/3") && Catch::Contains("--resume"));
  engine::Metadata meta = engine::read_safetensors_metadata(dir / "cut/last.safetensors");
  REQUIRE(meta["epoch"] == "1");
  REQUIRE(meta["step"] == "2");

  app::TrainConfig resumed = tiny_config(dir / "cut");
  resumed.resume = dir / "cut/last.safetensors";
  app::TrainResult rest = app::train(resumed, tiny_net(999), data, quiet());
  REQUIRE(rest.status == app::TrainStatus::finished);
  require_same_history(full.history, rest.history);
  apptest::require_same_tensors(dir / "full/last.safetensors", dir / "cut/last.safetensors");

  // Interrupted right after the last step of epoch 1: the resumed run only evaluates, then goes on.
  hooks.after_step = [](int64_t e, int64_t s, engine::nn::Module&) {
    if (e == 0 && s == 2) app::request_interrupt();
  };
  REQUIRE(app::train(tiny_config(dir / "edge"), tiny_net(5), data, hooks).status == app::TrainStatus::interrupted);
  app::clear_interrupt();
  resumed = tiny_config(dir / "edge");
  resumed.resume = dir / "edge/last.safetensors";
  rest = app::train(resumed, tiny_net(3), data, quiet());
  require_same_history(full.history, rest.history);
  apptest::require_same_tensors(dir / "full/last.safetensors", dir / "edge/last.safetensors");
}

TEST_CASE("trainer: a non-finite loss stops the run naming epoch and step, keeping the last good checkpoint",
          "[app][trainer]") {
  apptest::TempDir dir;
  app::TrainConfig cfg = tiny_config(dir.str());
  cfg.val_split = 0;  // 64 examples: 4 steps per epoch
  app::TrainHooks hooks = quiet();
  hooks.after_step = [](int64_t e, int64_t s, engine::nn::Module& m) {
    if (e == 1 && s == 0) m.find("5.weight").fill_(NAN);  // poison the classifier after step 1 of epoch 2
  };
  app::TrainResult r = app::train(cfg, tiny_net(5), tiny_data(), hooks);
  REQUIRE(r.status == app::TrainStatus::diverged);
  REQUIRE(r.exit_code() == 3);
  REQUIRE_THAT(r.message, Catch::Contains("non-finite loss (nan) at epoch 2/3 step 2/4") &&
                              Catch::Contains("last.safetensors (after epoch 1)"));
  engine::Metadata meta = engine::read_safetensors_metadata(dir / "last.safetensors");
  REQUIRE(meta["epoch"] == "1");
  auto fresh = tiny_net(1);
  engine::load_checkpoint(dir / "last.safetensors", *fresh);
  for (const auto& [name, t] : fresh->named_parameters())
    for (double v : t.to_vector()) REQUIRE(std::isfinite(v));
  REQUIRE(r.history.size() == 1);

  // Diverging in the very first epoch: no checkpoint to keep, and the message says so.
  apptest::TempDir dir2;
  hooks.after_step = [](int64_t e, int64_t s, engine::nn::Module& m) {
    if (e == 0 && s == 1) m.find("5.weight").fill_(INFINITY);
  };
  r = app::train(tiny_config(dir2.str()), tiny_net(5), tiny_data(), hooks);
  REQUIRE(r.status == app::TrainStatus::diverged);
  REQUIRE_THAT(r.message, Catch::Contains("epoch 1/3 step 3/3") && Catch::Contains("No checkpoint"));
}

TEST_CASE("trainer: early stopping, best checkpoint and evaluation", "[app][trainer]") {
  apptest::TempDir dir;
  app::TrainConfig cfg = tiny_config(dir.str());
  cfg.lr = 1e-8;  // nothing improves after the first epoch
  cfg.epochs = 6;
  cfg.early_stop = 2;
  cfg.augment = false;
  cfg.warmup_epochs = 0;
  app::TrainResult r = app::train(cfg, tiny_net(5, false), tiny_data(), quiet());
  REQUIRE(r.status == app::TrainStatus::early_stopped);
  REQUIRE(r.history.size() == 3);
  REQUIRE_THAT(r.message, Catch::Contains("early stop"));
  engine::Metadata best = engine::read_safetensors_metadata(dir / "best.safetensors");
  REQUIRE(std::stod(best["best_metric"]) == Approx(r.history[std::stoi(best["best_epoch"]) - 1].val_acc));

  // Evaluating the best checkpoint reproduces that epoch's test accuracy.
  auto net = tiny_net(77, false);
  engine::load_checkpoint(dir / "best.safetensors", *net);
  app::DeviceDataset test(tiny_data().test, engine::Device::cpu());
  app::EvalResult e = app::evaluate(*net, test, app::preprocess_of(cfg), 16);
  REQUIRE(e.accuracy == r.history[std::stoi(best["best_epoch"]) - 1].test_acc);
  REQUIRE(e.count == 32);
  REQUIRE_THAT(app::per_class_table(e), Catch::Contains("T-shirt/top") && Catch::Contains("Ankle boot"));
}

TEST_CASE("trainer: Xavier-uniform init bounds conv and linear weights only", "[app][trainer]") {
  auto net = tiny_net(1);
  engine::Generator g(3);
  app::xavier_uniform_init(*net, g);
  const double conv_bound = std::sqrt(6.0 / (1 * 9 + 4 * 9)), fc_bound = std::sqrt(6.0 / (196 + 10));
  const double conv_max = testing::max_abs(net->find("0.weight").to_vector());  // NaN if any is NaN
  const double fc_max = testing::max_abs(net->find("5.weight").to_vector());
  REQUIRE(conv_max <= conv_bound);
  REQUIRE(conv_max > 0.7 * conv_bound);
  REQUIRE(fc_max <= fc_bound);
  REQUIRE(fc_max > 0.9 * fc_bound);
  REQUIRE(net->find("1.weight").to_vector() == std::vector<double>(4, 1.0));  // BN gamma untouched
}

TEST_CASE("trainer: --precision bf16 learns, keeps float32 weights and resumes exactly", "[app][trainer][bf16]") {
  apptest::TempDir dir;
  const app::FashionMnist data = tiny_data();
  app::clear_interrupt();
  app::TrainConfig cfg = tiny_config(dir / "bf16");
  cfg.precision = "bf16";
  app::TrainResult run = app::train(cfg, tiny_net(5), data, quiet());
  REQUIRE(run.status == app::TrainStatus::finished);
  REQUIRE(run.history.back().train_loss < run.history.front().train_loss);  // it learns
  // The masters and their momentum are float32 (safetensors F32), and the run says which math it used.
  const engine::SafetensorsFile f = engine::read_safetensors(dir / "bf16/last.safetensors");
  for (const auto& [name, t] : f.tensors) {
    INFO(name);
    if (t.dtype != "I64") REQUIRE(t.dtype == "F32");  // I64: BN's num_batches_tracked
  }
  REQUIRE(engine::read_safetensors_metadata(dir / "bf16/last.safetensors").at("config.precision") == "bf16");
  // Not the float32 run: bf16 rounding changes the trajectory (a run that ignored --precision would match it).
  app::TrainResult fp32 = app::train(tiny_config(dir / "fp32"), tiny_net(5), data, quiet());
  REQUIRE(fp32.history.back().train_loss != run.history.back().train_loss);
  // Cut after epoch 1 and resumed: the same history and weights as the uninterrupted bf16 run.
  app::TrainHooks hooks = quiet();
  hooks.after_step = [](int64_t e, int64_t s, engine::nn::Module&) {
    if (e == 0 && s == 2) app::request_interrupt();
  };
  app::TrainConfig cut = tiny_config(dir / "cut");
  cut.precision = "bf16";
  REQUIRE(app::train(cut, tiny_net(5), data, hooks).status == app::TrainStatus::interrupted);
  app::clear_interrupt();
  cut.resume = dir / "cut/last.safetensors";
  app::TrainResult rest = app::train(cut, tiny_net(3), data, quiet());
  require_same_history(run.history, rest.history);
  apptest::require_same_tensors(dir / "bf16/last.safetensors", dir / "cut/last.safetensors");
}
