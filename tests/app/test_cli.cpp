#include <CLI/CLI.hpp>
#include <catch2/catch.hpp>
#include <cmath>
#include <sstream>

#include "apps/common/cli.h"
#include "apps/common/config.h"
#include "apps/common/trainer.h"
#include "engine/error.h"

namespace {
// The command line of train_fmnist, parsed by the same calls as its main().
struct TrainCli {
  app::TrainConfig cfg;
  CLI::App cli{"Trains.", "train_fmnist"};
  TrainCli() {
    app::configure_cli(cli, "train_fmnist MODEL [options]", "examples:\n  train_fmnist resnet20");
    app::add_train_options(cli, cfg);
  }
  void parse(std::vector<const char*> args) {
    args.insert(args.begin(), "train_fmnist");
    app::parse_or_throw(cli, static_cast<int>(args.size()), args.data());
  }
};

app::TrainConfig parse(std::vector<const char*> args, std::set<std::string>* given = nullptr) {
  TrainCli t;
  t.parse(std::move(args));
  if (given) *given = app::given_options(t.cli);
  return t.cfg;
}
}  // namespace

TEST_CASE("cli: values, switches, --name=value and positionals", "[app][cli]") {
  std::set<std::string> given;
  app::TrainConfig cfg = parse({"resnet50", "--lr", "0.1", "--epochs=3", "--nesterov", "--schedule", "cosine",
                                "--resize", "28", "--device", "cuda:1", "--out=a=b"},
                               &given);
  REQUIRE(cfg.model == "resnet50");
  REQUIRE(cfg.lr == 0.1);
  REQUIRE(cfg.epochs == 3);
  REQUIRE(cfg.nesterov);
  REQUIRE(cfg.schedule == "cosine");
  REQUIRE(cfg.resize == 28);
  REQUIRE(cfg.device == "cuda:1");
  REQUIRE(cfg.out == "a=b");       // split at the first '=' only
  REQUIRE(cfg.batch_size == 128);  // defaults of the issue
  REQUIRE(cfg.momentum == 0.9);
  REQUIRE(cfg.weight_decay == 5e-4);
  // given: exactly the flags on the command line (apply_recipe and merge_for_resume depend on it).
  for (const char* name : {"lr", "epochs", "nesterov", "schedule", "resize", "device", "out"})
    REQUIRE(given.count(name) == 1);
  for (const char* name : {"batch-size", "momentum", "weight-decay", "augment", "recipe"})
    REQUIRE(given.count(name) == 0);
  // A repeated option keeps its last value; an option's value may start with '-'; "--" ends the options.
  REQUIRE(parse({"--lr", "0.1", "--lr=0.2"}).lr == 0.2);
  REQUIRE(parse({"--out", "-dir"}).out == "-dir");
  REQUIRE(parse({"--", "--odd-model-name"}).model == "--odd-model-name");
}

TEST_CASE("cli: bad input names the flag and the valid choices", "[app][cli]") {
  REQUIRE_THROWS_WITH(parse({"--schedule", "linear"}),
                      Catch::Contains("--schedule: 'linear' is not one of: none, step, cosine"));
  REQUIRE_THROWS_WITH(parse({"--schedule=linear"}),
                      Catch::Contains("--schedule: 'linear' is not one of: none, step, cosine"));
  REQUIRE_THROWS_WITH(parse({"--lr", "fast"}), Catch::Contains("--lr: 'fast' is not a number"));
  REQUIRE_THROWS_WITH(parse({"--lr", "-1"}), Catch::Contains("--lr: -1 is outside [1e-08, 100]"));
  REQUIRE_THROWS_WITH(parse({"--epochs", "2.5"}), Catch::Contains("--epochs: '2.5' is not an integer"));
  REQUIRE_THROWS_WITH(parse({"--batch-size"}), Catch::Equals("--batch-size needs a value (N)"));
  REQUIRE_THROWS_WITH(parse({"--nesterov=1"}), Catch::Equals("--nesterov is a switch and takes no value"));
  REQUIRE_THROWS_WITH(parse({"--momentun", "0.5"}),
                      Catch::Equals("unknown option --momentun (did you mean --momentum?); see train_fmnist --help"));
  REQUIRE_THROWS_WITH(parse({"--momentun=0.5"}),
                      Catch::Contains("unknown option --momentun (did you mean --momentum?)"));
  REQUIRE_THROWS_WITH(parse({"--zzz"}), Catch::Equals("unknown option --zzz; see train_fmnist --help"));
  REQUIRE_THROWS_WITH(parse({"-x"}), Catch::Contains("unknown option -x"));
  REQUIRE_THROWS_WITH(parse({"resnet20", "resnet50"}), Catch::Contains("unexpected argument 'resnet50'"));
  REQUIRE_THROWS_WITH(parse({"--device", "gpu"}),
                      Catch::StartsWith("--device: ") && Catch::Contains("expected cpu, cuda or cuda:N"));
  REQUIRE_THROWS_WITH(parse({"--conv", "winograd"}), Catch::Contains("native, cudnn, fastest"));
  REQUIRE_THROWS_AS(parse({"--lr", "fast"}), CLI::ParseError);  // what parse_cli turns into exit status 2
}

TEST_CASE("cli: --help lists every option with its metavar, choices and default, wrapped", "[app][cli]") {
  TrainCli t;
  REQUIRE_THROWS_AS(t.parse({"--help"}), CLI::CallForHelp);
  REQUIRE_THROWS_AS(t.parse({"-h"}), CLI::CallForHelp);
  const std::string h = t.cli.help();
  REQUIRE_THAT(h, Catch::StartsWith("usage: train_fmnist MODEL [options]\n\nTrains.\n\noptions:\n"));
  for (const auto& f : app::train_config_fields())
    REQUIRE_THAT(h, Catch::Contains("\n  --" + f.name + (f.metavar.empty() ? "" : " " + f.metavar)));
  REQUIRE_THAT(h, Catch::Contains("  --lr LR                   Peak learning rate of SGD (default 0.05)."));
  REQUIRE_THAT(h, Catch::Contains("--schedule none|step|cosine"));
  REQUIRE_THAT(h, Catch::Contains("Choices: none, step, cosine; default none."));
  REQUIRE_THAT(h, Catch::Contains("  -h, --help                Show this help and exit.\n\nexamples:\n"));
  REQUIRE_THAT(h, Catch::EndsWith("examples:\n  train_fmnist resnet20\n"));
  std::istringstream lines(h);
  size_t longest = 0, count = 0;
  for (std::string line; std::getline(lines, line); ++count) longest = std::max(longest, line.size());
  REQUIRE(longest <= 110);  // wrapped
  REQUIRE(count > app::train_config_fields().size() + 10);
}

TEST_CASE("cli: the defaults --help states are the code's defaults", "[app][cli]") {
  // Numbers and choices say "default X" in their help; a stale text would mislead every user.
  const app::TrainConfig defaults;
  for (const auto& f : app::train_config_fields()) {
    if (f.metavar.empty() || (f.kind == app::ConfigField::Kind::string && f.metavar.find('|') == std::string::npos))
      continue;  // switches are off by default; free text (paths, device) is described in words
    INFO("--" << f.name << ": " << f.help);
    const size_t at = f.help.find("default ");
    REQUIRE(at != std::string::npos);
    const size_t from = at + 8, to = f.help.find_first_of(" ;:,)", from);
    std::string stated = f.help.substr(from, to - from);
    if (!stated.empty() && stated.back() == '.') stated.pop_back();
    const std::string actual = f.get(defaults);
    if (f.kind == app::ConfigField::Kind::number)
      REQUIRE(std::stod(stated) == std::stod(actual));
    else
      REQUIRE(stated == actual);
  }
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
