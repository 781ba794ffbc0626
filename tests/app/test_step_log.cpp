#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "apps/common/step_log.h"
#include "apps/common/trainer.h"
#include "engine/checkpoint.h"
#include "tests/app/tiny_run.h"

using apptest::quiet;
using apptest::tiny_config;
using apptest::tiny_data;
using apptest::tiny_net;
namespace fs = std::filesystem;

namespace {

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// steps.csv without its elapsed_seconds column (wall time differs between runs).
std::string without_times(const std::string& path) {
  std::string out;
  std::istringstream in(read_all(path));
  std::string line;
  while (std::getline(in, line)) out += line.substr(0, line.rfind(',')) + "\n";
  return out;
}

}  // namespace

TEST_CASE("steps.csv: every K steps, windows within an epoch, their means make the epoch's", "[app][trainer]") {
  apptest::TempDir dir;
  app::clear_interrupt();
  app::TrainConfig cfg = tiny_config(dir.str());  // 3 epochs of 3 steps (48 examples, batch 16)
  cfg.log_every = 2;
  app::TrainResult r = app::train(cfg, tiny_net(5), tiny_data(), quiet());
  REQUIRE(r.status == app::TrainStatus::finished);
  const std::vector<app::StepRecord> s = app::read_steps_csv(dir / "steps.csv");
  // Steps 2 and 3 of each epoch close a window: the last one of an epoch is short, none spans two epochs.
  REQUIRE(s.size() == 6);
  const int64_t iters[] = {2, 3, 5, 6, 8, 9}, lens[] = {2, 1, 2, 1, 2, 1};
  for (size_t i = 0; i < s.size(); ++i) {
    INFO("record " << i);
    REQUIRE(s[i].iteration == iters[i]);
    REQUIRE(s[i].steps == lens[i]);
    REQUIRE(s[i].examples == 16 * lens[i]);
    REQUIRE(std::fabs(s[i].epoch - iters[i] / 3.0) < 1e-12);
    REQUIRE(s[i].lr == app::learning_rate(cfg, (iters[i] - 1) / 3, (iters[i] - 1) % 3, 3));
    REQUIRE(s[i].elapsed_seconds >= 0);
  }
  for (size_t e = 0; e < 3; ++e) {
    const app::StepRecord &a = s[2 * e], &b = s[2 * e + 1];
    const double loss = (a.train_loss * a.examples + b.train_loss * b.examples) / 48;
    const double acc = (a.train_acc * a.examples + b.train_acc * b.examples) / 48;
    // Sums of at most 48 float64 terms: only rounding differs.
    REQUIRE(std::fabs(loss - r.history[e].train_loss) < 1e-12);
    REQUIRE(std::fabs(acc - r.history[e].train_acc) < 1e-12);
  }

  // The default: about 25 records per epoch, here one every step.
  apptest::TempDir d2;
  cfg = tiny_config(d2.str());
  cfg.epochs = 1;
  cfg.warmup_epochs = 0;
  app::TrainHooks plots = quiet();
  plots.plots = true;
  REQUIRE(app::train(cfg, tiny_net(5), tiny_data(), plots).status == app::TrainStatus::finished);
  REQUIRE(app::read_steps_csv(d2 / "steps.csv").size() == 3);
  REQUIRE(fs::file_size(d2 / "curves.png") > 5000);  // drawn from steps.csv at the end of the epoch
  REQUIRE(fs::file_size(d2 / "curves.svg") > 5000);
}

TEST_CASE("steps.csv: a resumed run holds the records up to its checkpoint, then continues", "[app][trainer]") {
  apptest::TempDir dir;
  const app::FashionMnist data = tiny_data();
  app::clear_interrupt();
  app::TrainConfig cfg = tiny_config(dir / "full");
  cfg.log_every = 2;
  REQUIRE(app::train(cfg, tiny_net(5), data, quiet()).status == app::TrainStatus::finished);
  const std::string full = without_times(dir / "full/steps.csv");

  // Ctrl-C after the first step of epoch 2: that epoch's first window is open in the checkpoint.
  app::TrainHooks hooks = quiet();
  hooks.after_step = [](int64_t e, int64_t s, engine::nn::Module&) {
    if (e == 1 && s == 0) app::request_interrupt();
  };
  cfg.out = dir / "cut";
  REQUIRE(app::train(cfg, tiny_net(5), data, hooks).status == app::TrainStatus::interrupted);
  app::clear_interrupt();
  REQUIRE(app::read_steps_csv(dir / "cut/steps.csv").size() == 2);  // epoch 1's two windows
  REQUIRE(engine::read_safetensors_metadata(dir / "cut/last.safetensors")["window_step"] == "0");

  // Records written after the checkpoint (a run killed later, or one that diverged) and a line cut short are
  // dropped on resume.
  fs::copy_file(dir / "full/steps.csv", dir / "cut/steps.csv", fs::copy_options::overwrite_existing);
  std::ofstream(dir / "cut/steps.csv", std::ios::app) << "10,3.3,0.1";
  app::TrainConfig resumed = cfg;
  resumed.resume = dir / "cut/last.safetensors";
  REQUIRE(app::train(resumed, tiny_net(999), data, quiet()).status == app::TrainStatus::finished);
  REQUIRE(without_times(dir / "cut/steps.csv") == full);

  // Resumed into another folder: the records come from the checkpoint's folder.
  cfg.out = dir / "cut2";
  hooks.after_step = [](int64_t e, int64_t s, engine::nn::Module&) {
    if (e == 2 && s == 1) app::request_interrupt();
  };
  REQUIRE(app::train(cfg, tiny_net(5), data, hooks).status == app::TrainStatus::interrupted);
  app::clear_interrupt();
  resumed.resume = dir / "cut2/last.safetensors";
  resumed.out = dir / "elsewhere";
  REQUIRE(app::train(resumed, tiny_net(7), data, quiet()).status == app::TrainStatus::finished);
  REQUIRE(without_times(dir / "elsewhere/steps.csv") == full);

  // Without the file beside the checkpoint the new one starts at the checkpoint (iteration 8 of 9 here).
  fs::remove(dir / "cut2/steps.csv");
  resumed.out = dir / "lost";
  REQUIRE(app::train(resumed, tiny_net(7), data, quiet()).status == app::TrainStatus::finished);
  const std::vector<app::StepRecord> rest = app::read_steps_csv(dir / "lost/steps.csv");
  REQUIRE(rest.size() == 1);
  REQUIRE(rest[0].iteration == 9);
  REQUIRE(rest[0].steps == 1);
}
