// The training recipe's switches end to end in the trainer: --ema (evaluation and checkpoints use the averages,
// resume restores them), --erase and --no-wd-bn (exact resume), and checkpoints written before these fields.
#include <catch2/catch.hpp>

#include "apps/common/config.h"
#include "apps/common/trainer.h"
#include "engine/checkpoint.h"
#include "engine/optim/ema.h"
#include "tests/app/app_test_util.h"
#include "tests/app/tiny_run.h"

using apptest::quiet;
using apptest::tiny_config;
using apptest::tiny_data;
using apptest::tiny_net;

namespace {
app::TrainConfig recipe_config(const std::string& out) {
  app::TrainConfig c = tiny_config(out);
  c.ema = 0.5;  // short: the averages must differ clearly from the weights within 9 steps
  c.erase = 0.5;
  c.no_wd_bn = true;
  c.weight_decay = 0.05;
  return c;
}

}  // namespace

TEST_CASE("recipe: --ema evaluates with the averages, which the checkpoint carries", "[app][trainer][ema]") {
  apptest::TempDir dir;
  const app::FashionMnist data = tiny_data();
  app::clear_interrupt();
  const app::TrainConfig cfg = recipe_config(dir / "run");
  app::TrainResult r = app::train(cfg, tiny_net(5), data, quiet());
  REQUIRE(r.status == app::TrainStatus::finished);

  const std::string last = dir / "run/last.safetensors";
  engine::SafetensorsFile f = engine::read_safetensors(last);
  REQUIRE(f.find("ema.0.weight"));
  REQUIRE(f.find("ema.1.running_mean"));
  REQUIRE(f.metadata.at("config.ema") == "0.5");

  // The model tensors are the raw weights; evaluating them differs from what the run recorded, evaluating the
  // averages reproduces it exactly.
  auto model = tiny_net(1);
  engine::load_checkpoint(last, *model);
  app::DeviceDataset test(data.test, engine::Device::cpu());
  const app::Preprocess pp = app::preprocess_of(cfg);
  const app::EvalResult raw = app::evaluate(*model, test, pp, cfg.batch_size);
  engine::optim::ModelEma ema(*model, cfg.ema);
  REQUIRE(ema.load(last));
  app::EvalResult averaged;
  {
    engine::optim::EmaScope scope(&ema, *model);
    averaged = app::evaluate(*model, test, pp, cfg.batch_size);
  }
  REQUIRE(averaged.loss == r.history.back().test_loss);
  REQUIRE(averaged.accuracy == r.history.back().test_acc);
  REQUIRE(raw.loss != averaged.loss);

  // A checkpoint without averages does not pass for one with them.
  engine::optim::ModelEma none(*model, 0.5);
  app::TrainConfig plain = tiny_config(dir / "plain");
  plain.epochs = 1;
  REQUIRE(app::train(plain, tiny_net(5), data, quiet()).status == app::TrainStatus::finished);
  REQUIRE_FALSE(none.load(dir / "plain/last.safetensors"));
}

TEST_CASE("recipe: --ema, --erase and --no-wd-bn resume mid-epoch exactly", "[app][trainer][ema][erasing]") {
  apptest::TempDir dir;
  const app::FashionMnist data = tiny_data();
  app::clear_interrupt();
  app::TrainResult full = app::train(recipe_config(dir / "full"), tiny_net(5), data, quiet());
  REQUIRE(full.status == app::TrainStatus::finished);

  app::TrainHooks hooks = quiet();
  hooks.after_step = [](int64_t e, int64_t s, engine::nn::Module&) {
    if (e == 1 && s == 1) app::request_interrupt();
  };
  REQUIRE(app::train(recipe_config(dir / "cut"), tiny_net(5), data, hooks).status == app::TrainStatus::interrupted);
  app::clear_interrupt();
  app::TrainConfig resumed = recipe_config(dir / "cut");
  resumed.resume = dir / "cut/last.safetensors";
  app::TrainResult rest = app::train(resumed, tiny_net(999), data, quiet());
  REQUIRE(rest.status == app::TrainStatus::finished);
  REQUIRE(rest.history.size() == full.history.size());
  for (size_t i = 0; i < full.history.size(); ++i) {
    REQUIRE(rest.history[i].train_loss == full.history[i].train_loss);
    REQUIRE(rest.history[i].test_loss == full.history[i].test_loss);
  }
  apptest::require_same_tensors(dir / "full/last.safetensors", dir / "cut/last.safetensors");  // ema.* included

  // The switches change the run: without them the same seed trains differently.
  app::TrainConfig off = recipe_config(dir / "off");
  off.erase = 0;
  off.epochs = 1;
  app::TrainResult no_erase = app::train(off, tiny_net(5), data, quiet());
  REQUIRE(no_erase.history[0].train_loss != full.history[0].train_loss);
  off.erase = 0.5;
  off.no_wd_bn = false;
  off.out = dir / "off2";
  app::TrainResult wd_everywhere = app::train(off, tiny_net(5), data, quiet());
  REQUIRE(wd_everywhere.history[0].test_loss != full.history[0].test_loss);
}

TEST_CASE("recipe: the new fields round-trip, may not change on resume, and old checkpoints load without them",
          "[app][cli]") {
  app::TrainConfig cfg;
  cfg.model = "resnet20";
  cfg.erase = 0.5;
  cfg.erase_fill = "zero";
  cfg.ema = 0.999;
  cfg.no_wd_bn = true;
  engine::Metadata meta = app::config_to_metadata(cfg);
  REQUIRE(meta.at("config.erase") == "0.5");
  REQUIRE(meta.at("config.erase-fill") == "zero");
  REQUIRE(meta.at("config.ema") == "0.999");
  REQUIRE(meta.at("config.no-wd-bn") == "true");
  app::TrainConfig back = app::config_from_metadata(meta, "ckpt");
  REQUIRE(back.erase == 0.5);
  REQUIRE(back.erase_fill == "zero");
  REQUIRE(back.ema == 0.999);
  REQUIRE(back.no_wd_bn);
  REQUIRE_THAT(app::config_to_json(cfg), Catch::Contains("\"ema\": 0.999") && Catch::Contains("\"no-wd-bn\": true"));

  for (const char* key : {"config.erase", "config.erase-fill", "config.ema", "config.no-wd-bn"}) meta.erase(key);
  app::TrainConfig old = app::config_from_metadata(meta, "old.safetensors");
  REQUIRE(old.erase == 0);
  REQUIRE(old.ema == 0);
  REQUIRE_FALSE(old.no_wd_bn);

  app::TrainConfig cli_cfg = old;
  cli_cfg.ema = 0.9;
  REQUIRE_THROWS_WITH(app::merge_for_resume(old, cli_cfg, {"ema"}), Catch::Contains("--ema 0.9 differs"));

  for (const auto& f : app::train_config_fields()) {
    if (f.name == "erase") REQUIRE_THROWS_WITH(f.set(cfg, "1.5"), Catch::Contains("erase"));
    if (f.name == "ema") REQUIRE_THROWS_WITH(f.set(cfg, "1"), Catch::Contains("ema"));
    if (f.name == "erase-fill") REQUIRE_THROWS_WITH(f.set(cfg, "mean"), Catch::Contains("random"));
  }
}
