#include <catch2/catch.hpp>
#include <cmath>

#include "apps/common/cli.h"
#include "apps/common/config.h"
#include "apps/common/trainer.h"
#include "engine/error.h"

namespace {
app::TrainConfig parse(std::vector<const char*> args, std::set<std::string>* given = nullptr) {
  app::TrainConfig cfg;
  app::Cli cli("train_fmnist", "train_fmnist MODEL", "test");
  app::add_train_options(cli, cfg);
  args.insert(args.begin(), "train_fmnist");
  auto pos = cli.parse(static_cast<int>(args.size()), args.data());
  if (!pos.empty()) cfg.model = pos[0];
  if (given) *given = cli.given_names();
  return cfg;
}
}  // namespace

TEST_CASE("cli: values, switches, --name=value and positionals", "[app][cli]") {
  app::TrainConfig cfg = parse({"resnet50", "--lr", "0.1", "--epochs=3", "--nesterov", "--schedule", "cosine",
                                "--resize", "28", "--device", "cuda:1"});
  REQUIRE(cfg.model == "resnet50");
  REQUIRE(cfg.lr == 0.1);
  REQUIRE(cfg.epochs == 3);
  REQUIRE(cfg.nesterov);
  REQUIRE(cfg.schedule == "cosine");
  REQUIRE(cfg.resize == 28);
  REQUIRE(cfg.device == "cuda:1");
  REQUIRE(cfg.batch_size == 128);  // defaults of the issue
  REQUIRE(cfg.momentum == 0.9);
  REQUIRE(cfg.weight_decay == 5e-4);
}

TEST_CASE("cli: bad input names the flag and the valid choices", "[app][cli]") {
  REQUIRE_THROWS_WITH(parse({"--schedule", "linear"}),
                      Catch::Contains("--schedule: 'linear' is not one of: none, step, cosine"));
  REQUIRE_THROWS_WITH(parse({"--lr", "fast"}), Catch::Contains("--lr: 'fast' is not a number"));
  REQUIRE_THROWS_WITH(parse({"--lr", "-1"}), Catch::Contains("outside"));
  REQUIRE_THROWS_WITH(parse({"--epochs", "2.5"}), Catch::Contains("not an integer"));
  REQUIRE_THROWS_WITH(parse({"--batch-size"}), Catch::Contains("needs a value"));
  REQUIRE_THROWS_WITH(parse({"--nesterov=1"}), Catch::Contains("takes no value"));
  REQUIRE_THROWS_WITH(parse({"--momentun", "0.5"}), Catch::Contains("did you mean --momentum?"));
  REQUIRE_THROWS_WITH(parse({"--device", "gpu"}), Catch::Contains("expected cpu, cuda or cuda:N"));
  REQUIRE_THROWS_WITH(parse({"--conv", "winograd"}), Catch::Contains("native, cudnn"));
}

TEST_CASE("cli: --help lists every option with its help", "[app][cli]") {
  app::TrainConfig cfg;
  app::Cli cli("train_fmnist", "train_fmnist MODEL", "Trains.");
  app::add_train_options(cli, cfg);
  const char* argv[] = {"train_fmnist", "--help"};
  cli.parse(2, argv);
  REQUIRE(cli.help_requested());
  std::string h = cli.help();
  for (const auto& f : app::train_config_fields()) REQUIRE_THAT(h, Catch::Contains("--" + f.name));
  REQUIRE_THAT(h, Catch::Contains("--help"));
}

TEST_CASE("config: the d2l recipe, with explicit flags winning", "[app][cli]") {
  std::set<std::string> given;
  app::TrainConfig cfg = parse({"resnet18", "--recipe", "d2l", "--batch-size", "64"}, &given);
  app::apply_recipe(cfg, given);
  REQUIRE(cfg.init == "xavier");
  REQUIRE(cfg.momentum == 0);
  REQUIRE(cfg.weight_decay == 0);
  REQUIRE_FALSE(cfg.augment);
  REQUIRE(cfg.resize == 96);
  REQUIRE(cfg.schedule == "none");
  REQUIRE(cfg.batch_size == 64);
  REQUIRE(cfg.lr == 0.05);
}

TEST_CASE("config: metadata round trip and resume merging", "[app][cli]") {
  app::TrainConfig cfg = parse({"resnet20", "--lr", "0.125", "--augment", "--val-split", "0.1", "--seed", "42"});
  cfg.out = "runs/x";
  app::TrainConfig back = app::config_from_metadata(app::config_to_metadata(cfg), "ckpt");
  REQUIRE(app::config_to_json(back) == app::config_to_json(cfg));
  REQUIRE_THAT(app::config_to_json(cfg), Catch::Contains("\"lr\": 0.125") && Catch::Contains("\"augment\": true") &&
                                             Catch::Contains("\"model\": \"resnet20\""));
  REQUIRE_THROWS_WITH(app::config_from_metadata({{"config.model", "resnet20"}}, "ckpt.safetensors"),
                      Catch::Contains("ckpt.safetensors") && Catch::Contains("lacks config."));

  std::set<std::string> given;
  app::TrainConfig cli_cfg = parse({"--resume", "a.safetensors", "--epochs", "20", "--device", "cpu"}, &given);
  app::TrainConfig merged = app::merge_for_resume(cfg, cli_cfg, given);
  REQUIRE(merged.epochs == 20);
  REQUIRE(merged.device == "cpu");
  REQUIRE(merged.lr == 0.125);
  REQUIRE(merged.resume == "a.safetensors");
  cli_cfg = parse({"--resume", "a.safetensors", "--lr", "0.2"}, &given);
  REQUIRE_THROWS_WITH(app::merge_for_resume(cfg, cli_cfg, given),
                      Catch::Contains("--lr 0.20000000000000001 differs from the checkpoint's 0.125") ||
                          Catch::Contains("--lr 0.2 differs from the checkpoint's 0.125"));
  cli_cfg = parse({"resnet56", "--resume", "a.safetensors"}, &given);
  REQUIRE_THROWS_WITH(app::merge_for_resume(cfg, cli_cfg, given), Catch::Contains("not a resnet56"));
}

TEST_CASE("config: learning-rate schedules", "[app][cli]") {
  app::TrainConfig cfg;
  cfg.lr = 0.1;
  cfg.epochs = 8;
  const int64_t spe = 10;
  REQUIRE(app::learning_rate(cfg, 5, 3, spe) == 0.1);
  cfg.schedule = "step";  // /10 at epoch 4 (50%) and 6 (75%)
  REQUIRE(app::learning_rate(cfg, 3, 9, spe) == Approx(0.1));
  REQUIRE(app::learning_rate(cfg, 4, 0, spe) == Approx(0.01));
  REQUIRE(app::learning_rate(cfg, 6, 0, spe) == Approx(0.001));
  cfg.schedule = "cosine";
  REQUIRE(app::learning_rate(cfg, 0, 0, spe) == Approx(0.1));
  REQUIRE(app::learning_rate(cfg, 4, 0, spe) == Approx(0.05));
  REQUIRE(app::learning_rate(cfg, 7, 9, spe) == Approx(0.1 * 0.5 * (1 + std::cos(M_PI * 79.0 / 80))));
  cfg.warmup_epochs = 2;  // linear ramp over 20 steps, then cosine over the remaining 6 epochs
  REQUIRE(app::learning_rate(cfg, 0, 0, spe) == Approx(0.1 / 20));
  REQUIRE(app::learning_rate(cfg, 1, 9, spe) == Approx(0.1));
  REQUIRE(app::learning_rate(cfg, 5, 0, spe) == Approx(0.05));
  app::validate(cfg);
  cfg.warmup_epochs = 8;
  REQUIRE_THROWS_WITH(app::validate(cfg), Catch::Contains("--warmup-epochs"));
}
