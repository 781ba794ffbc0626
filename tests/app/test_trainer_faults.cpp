// The trainer under faults: divergence (non-finite and finite blow-ups), checkpoints that must stay finite,
// SIGTERM, crafted resume metadata, orphan temporary files, a full disk and a final batch of one example.
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <csignal>
#include <filesystem>

#include "apps/common/trainer.h"
#include "engine/checkpoint.h"
#include "engine/error.h"
#include "engine/nn/layers.h"
#include "engine/optim/sgd.h"
#include "tests/app/app_test_util.h"
#include "tests/app/tiny_run.h"

using apptest::quiet;
using apptest::tiny_config;
using apptest::tiny_data;
using apptest::tiny_net;
using engine::Tensor;
namespace fs = std::filesystem;

namespace {

void scale_(Tensor t, double factor) {
  std::vector<double> v = t.to_vector();
  for (double& x : v) x *= factor;
  t.copy_(Tensor::from_vector(v, t.shape(), t.dtype()));
}

// Every float tensor of the file (weights, BN statistics, momentum) is finite.
void require_finite_file(const std::string& path) {
  engine::SafetensorsFile f = engine::read_safetensors(path);
  REQUIRE(f.tensors.size() > 0);
  for (const auto& [name, t] : f.tensors) {
    if (t.dtype != "F32" && t.dtype != "F64") continue;
    INFO(path << ": " << name);
    for (double v : t.to_tensor().to_vector()) REQUIRE(std::isfinite(v));
  }
}

// The kept checkpoint evaluates to a finite loss and resumes to the end of the run.
void require_usable(const std::string& ckpt, app::TrainConfig cfg, const std::string& out) {
  require_finite_file(ckpt);
  auto net = tiny_net(77);
  engine::load_checkpoint(ckpt, *net);
  app::DeviceDataset test(tiny_data().test, engine::Device::cpu());
  app::EvalResult e = app::evaluate(*net, test, app::preprocess_of(cfg), 16);
  REQUIRE(std::isfinite(e.loss));
  REQUIRE(e.count == 32);
  cfg.resume = ckpt;
  cfg.out = out;
  app::TrainResult r = app::train(cfg, tiny_net(3), tiny_data(), quiet());
  REQUIRE(r.status == app::TrainStatus::finished);
  REQUIRE(static_cast<int64_t>(r.history.size()) == cfg.epochs);
}

app::TrainConfig no_split(const std::string& out) {
  app::TrainConfig c = tiny_config(out);
  c.val_split = 0;  // 64 examples: 4 steps per epoch
  return c;
}

}  // namespace

TEST_CASE("trainer faults: the divergence bound is 100 ln(classes)", "[app][trainer]") {
  REQUIRE(app::divergence_bound(10) == Approx(100 * std::log(10.0)));
  REQUIRE(app::divergence_bound(10) > 230);
  REQUIRE(app::divergence_bound(10) < 231);
}

TEST_CASE("trainer faults: a finite blow-up of the training loss stops the run (exit 3), keeping a usable checkpoint",
          "[app][trainer]") {
  apptest::TempDir dir;
  app::TrainConfig cfg = no_split(dir / "run");
  app::TrainHooks hooks = quiet();
  hooks.after_step = [](int64_t e, int64_t s, engine::nn::Module& m) {
    if (e == 1 && s == 0) scale_(m.find("5.weight"), 1e6);  // logits ~1e6: a huge but finite loss at step 2
  };
  app::TrainResult r = app::train(cfg, tiny_net(5), tiny_data(), hooks);
  REQUIRE(r.status == app::TrainStatus::diverged);
  REQUIRE(r.exit_code() == 3);
  REQUIRE_THAT(r.message, Catch::Contains("training diverged: loss ") &&
                              Catch::Contains("above the divergence bound 230.3 (100 x ln 10) at epoch 2/3 step 2/4") &&
                              Catch::Contains("last.safetensors (after epoch 1), is kept"));
  REQUIRE(r.history.size() == 1);
  REQUIRE(engine::read_safetensors_metadata(dir / "run/last.safetensors")["epoch"] == "1");
  require_finite_file(dir / "run/best.safetensors");
  require_usable(dir / "run/last.safetensors", cfg, dir / "resumed");
}

TEST_CASE("trainer faults: a finite test loss past the bound is a notice, and training goes on", "[app][trainer]") {
  apptest::TempDir dir;
  app::TrainConfig cfg = no_split(dir / "run");
  app::TrainHooks hooks = quiet();
  // Training normalises with batch statistics and does not notice; evaluation uses the running mean, so every
  // activation becomes ~1e10 and the test loss explodes while staying finite: what eval-mode BN gives a deep plain
  // net whose running statistics lag its weights (plain56, first epoch). Not a divergence of training.
  hooks.after_step = [](int64_t e, int64_t s, engine::nn::Module& m) {
    if (e == 1 && s == 3) m.find("1.running_mean").fill_(-1e10);
  };
  app::TrainResult r = app::train(cfg, tiny_net(5), tiny_data(), hooks);
  REQUIRE(r.status == app::TrainStatus::finished);
  REQUIRE(r.history.size() == 3);
  REQUIRE(r.history[1].test_loss > app::divergence_bound(10));
  REQUIRE(std::isfinite(r.history[1].test_loss));
  REQUIRE_FALSE(r.notices.empty());
  REQUIRE_THAT(r.notices[0], Catch::Contains("test loss ") && Catch::Contains("above the divergence bound") &&
                                 Catch::Contains("after epoch 2/3 while the training loss is ") &&
                                 Catch::Contains("training goes on"));
}

TEST_CASE("trainer faults: a non-finite test loss stops the run after the epoch, saving nothing of it",
          "[app][trainer]") {
  apptest::TempDir dir;
  app::TrainConfig cfg = no_split(dir / "run");
  app::TrainHooks hooks = quiet();
  // A NaN running mean: training (batch statistics) is unaffected, evaluation's loss is NaN.
  hooks.after_step = [](int64_t e, int64_t s, engine::nn::Module& m) {
    if (e == 1 && s == 3) m.find("1.running_mean").fill_(NAN);
  };
  app::TrainResult r = app::train(cfg, tiny_net(5), tiny_data(), hooks);
  REQUIRE(r.status == app::TrainStatus::diverged);
  REQUIRE_THAT(r.message, Catch::Contains("non-finite test loss") && Catch::Contains("after epoch 2/3") &&
                              Catch::Contains("(after epoch 1), is kept"));
  REQUIRE(engine::read_safetensors_metadata(dir / "run/last.safetensors")["epoch"] == "1");
  require_usable(dir / "run/last.safetensors", cfg, dir / "resumed");
}

TEST_CASE("trainer faults: a non-finite BN running variance with finite losses is never written", "[app][trainer]") {
  apptest::TempDir dir;
  app::TrainConfig cfg = no_split(dir / "run");
  app::TrainHooks hooks = quiet();
  // Training uses batch statistics and evaluation divides by sqrt(inf): both losses stay finite; only the state
  // check sees it.
  hooks.after_step = [](int64_t e, int64_t s, engine::nn::Module& m) {
    if (e == 1 && s == 3) m.find("1.running_var").fill_(INFINITY);
  };
  app::TrainResult r = app::train(cfg, tiny_net(5), tiny_data(), hooks);
  REQUIRE(r.status == app::TrainStatus::diverged);
  REQUIRE(r.exit_code() == 3);
  REQUIRE_THAT(r.message, Catch::Contains("tensor '1.running_var' holds a non-finite value after epoch 2/3") &&
                              Catch::Contains("(after epoch 1), is kept"));
  REQUIRE(engine::read_safetensors_metadata(dir / "run/last.safetensors")["epoch"] == "1");
  require_usable(dir / "run/last.safetensors", cfg, dir / "resumed");

  // In the first epoch: nothing is written and the message says so.
  hooks.after_step = [](int64_t e, int64_t s, engine::nn::Module& m) {
    if (e == 0 && s == 3) m.find("1.running_var").fill_(NAN);
  };
  r = app::train(no_split(dir / "first"), tiny_net(5), tiny_data(), hooks);
  REQUIRE(r.status == app::TrainStatus::diverged);
  REQUIRE_THAT(r.message, Catch::Contains("No checkpoint had been written yet"));
  REQUIRE_FALSE(fs::exists(dir / "first/last.safetensors"));
  REQUIRE_FALSE(fs::exists(dir / "first/best.safetensors"));
}

TEST_CASE("trainer faults: the state check covers parameters, buffers and momentum", "[app][trainer]") {
  auto net = tiny_net(5);
  engine::optim::SGD opt(net->parameters(), {0.1, 0.9, 0, false});
  REQUIRE(app::first_nonfinite_tensor(*net, &opt).empty());
  // One step defines the momentum buffers.
  for (auto& [name, p] : net->named_parameters()) {
    Tensor g = Tensor::full(p.shape(), 0.01, p.dtype());
    p.set_grad(g);
  }
  opt.step();
  REQUIRE(opt.momentum_buffers().back().defined());
  REQUIRE(app::first_nonfinite_tensor(*net, &opt).empty());
  opt.momentum_buffers().back().fill_(NAN);
  REQUIRE(app::first_nonfinite_tensor(*net, &opt) == "optimizer.momentum.5.bias");
  REQUIRE(app::first_nonfinite_tensor(*net, nullptr).empty());
  net->find("1.running_mean").fill_(-INFINITY);
  REQUIRE(app::first_nonfinite_tensor(*net, &opt) == "1.running_mean");
  net->find("0.weight").fill_(NAN);
  REQUIRE(app::first_nonfinite_tensor(*net, &opt) == "0.weight");
}

TEST_CASE("trainer faults: SIGTERM finishes the batch, saves and exits 143, the run resumes", "[app][trainer]") {
  apptest::TempDir dir;
  app::clear_interrupt();
  app::install_interrupt_handler();
  app::TrainHooks hooks = quiet();
  hooks.after_step = [](int64_t e, int64_t s, engine::nn::Module&) {
    if (e == 1 && s == 1) std::raise(SIGTERM);  // as `timeout` or a scheduler would send it
  };
  app::TrainResult r = app::train(tiny_config(dir.str()), tiny_net(5), tiny_data(), hooks);
  const int signal = app::interrupt_signal();
  app::clear_interrupt();
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  REQUIRE(signal == SIGTERM);
  REQUIRE(r.status == app::TrainStatus::interrupted);
  REQUIRE(r.exit_code() == 143);
  REQUIRE_THAT(r.message, Catch::Contains("interrupted by SIGTERM at epoch 2/3 step 2/3"));
  engine::Metadata meta = engine::read_safetensors_metadata(dir / "last.safetensors");
  REQUIRE(meta["epoch"] == "1");
  REQUIRE(meta["step"] == "2");
  app::TrainConfig resumed = tiny_config(dir.str());
  resumed.resume = dir / "last.safetensors";
  REQUIRE(app::train(resumed, tiny_net(9), tiny_data(), quiet()).status == app::TrainStatus::finished);
}

TEST_CASE("trainer faults: crafted resume metadata is refused naming the file and the key", "[app][trainer]") {
  apptest::TempDir dir;
  app::TrainConfig cfg = tiny_config(dir / "run");
  app::TrainHooks hooks = quiet();
  hooks.after_step = [](int64_t e, int64_t s, engine::nn::Module&) {
    if (e == 1 && s == 0) app::request_interrupt();
  };
  REQUIRE(app::train(cfg, tiny_net(5), tiny_data(), hooks).status == app::TrainStatus::interrupted);
  app::clear_interrupt();
  const engine::SafetensorsFile good = engine::read_safetensors(dir / "run/last.safetensors");
  REQUIRE(good.metadata.at("epoch") == "1");
  REQUIRE(good.metadata.at("step") == "1");

  struct Case {
    const char* key;
    std::string value, expect;
  };
  const std::vector<Case> cases = {
      {"epoch", "-1", "metadata 'epoch' = '-1' is out of range: expected 0 to 3"},
      {"epoch", "2", "metadata 'global_step' = '4' is out of range: epoch 2 and step 1 at 3 steps per epoch make 7"},
      {"step", "1000000", "metadata 'step' = '1000000' is out of range: expected 0 to 3"},
      {"global_step", "7", "metadata 'global_step' = '7' is out of range"},
      {"epoch", "1x", "metadata 'epoch' = '1x' is not an integer"},
      {"partial_count", "5", "metadata 'partial_count' = '5' is out of range: expected 16 to 16"},
      {"partial_correct", "17", "metadata 'partial_correct' = '17' is out of range"},
      {"partial_loss_sum", "1e30", "metadata 'partial_loss_sum' = '1e30' is out of range"},
      {"partial_loss_sum", "nan", "metadata 'partial_loss_sum' = 'nan' is out of range"},
      {"elapsed_seconds", "-3", "metadata 'elapsed_seconds' = '-3' is out of range"},
      {"best_metric", "1.5", "metadata 'best_metric' = '1.5' is out of range"},
      {"best_epoch", "9", "metadata 'best_epoch' = '9' is out of range: expected 0 to 1"},
      {"epochs_since_best", "-1", "metadata 'epochs_since_best' = '-1' is out of range"},
      {"train_examples", "0", "metadata 'train_examples' = '0' is out of range"},
      {"train_examples", "47", "trained on 47 examples per epoch but this run has 48"},
      {"history", "", "metadata 'history' holds 0 epochs but 'epoch' = 1"},
      {"history", "{\"epoch\":2}\n", "metadata 'history' line 1 records epoch 2"},
      {"history", "{\"train_loss\":1}\n", "metadata 'history' line 1: metrics record without \"epoch\""},
      {"format", "something else", "metadata 'format' = 'something else' is not 'train_fmnist checkpoint v1'"},
  };
  const std::string path = dir / "crafted.safetensors";
  for (const auto& c : cases) {
    INFO(c.key << " = " << c.value);
    engine::SafetensorsFile f = good;
    f.metadata[c.key] = c.value;
    engine::write_safetensors(path, f);
    app::TrainConfig resumed = cfg;
    resumed.resume = path;
    resumed.out = dir / "out";
    REQUIRE_THROWS_WITH(app::train(resumed, tiny_net(1), tiny_data(), quiet()), Catch::Contains(c.expect));
    if (c.expect.find("this run has") == std::string::npos)
      REQUIRE_THROWS_WITH(app::train(resumed, tiny_net(1), tiny_data(), quiet()), Catch::StartsWith(path + ": "));
    // The app runs the same checks before training (its exit code 2).
    auto net = tiny_net(1);
    REQUIRE_THROWS_WITH(app::check_before_training(resumed, tiny_data(), *net), Catch::Contains(c.expect));
  }
  // A non-finite tensor in the file, and a bad saved configuration.
  engine::SafetensorsFile f = good;
  for (auto& [name, t] : f.tensors)
    if (name == "1.running_var") t = engine::StoredTensor::from(Tensor::full(t.shape, NAN, engine::DType::f32));
  engine::write_safetensors(path, f);
  app::TrainConfig resumed = cfg;
  resumed.resume = path;
  auto net = tiny_net(1);
  REQUIRE_THROWS_WITH(app::check_before_training(resumed, tiny_data(), *net),
                      Catch::Contains(path + ": tensor '1.running_var' holds a non-finite value"));
  f = good;
  f.metadata["config.lr"] = "1e9";
  REQUIRE_THROWS_WITH(app::config_from_metadata(f.metadata, path),
                      Catch::Contains(path + ": bad saved configuration: --lr"));
  // The untouched file passes.
  engine::write_safetensors(path, good);
  app::check_before_training(resumed, tiny_data(), *net);
}

TEST_CASE("trainer faults: orphan temporary files of dead processes are removed at the next start", "[app][trainer]") {
  apptest::TempDir dir;
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  REQUIRE(child > 0);
  REQUIRE(::waitpid(child, nullptr, 0) == child);  // reaped: the pid names no process now
  const std::string dead = "last.safetensors.tmp-" + std::to_string(child);
  const std::string mine = "curves.png.tmp-" + std::to_string(::getpid());
  for (const std::string& name : {dead, mine, std::string("notes.tmp-abc"), std::string("x.tmp-1")})
    apptest::write_bytes(dir / name, {1, 2, 3}, false);
  REQUIRE(app::remove_orphan_temp_files(dir.str()) == std::vector<std::string>{dead});
  REQUIRE_FALSE(fs::exists(dir / dead));
  for (const std::string& name : {mine, std::string("notes.tmp-abc"), std::string("x.tmp-1")})
    REQUIRE(fs::exists(dir / name));  // live processes' (ours, init's) and names that are not ours stay

  // train() cleans its output folder when it starts.
  apptest::write_bytes(dir / dead, {1}, false);
  app::TrainConfig cfg = tiny_config(dir.str());
  cfg.epochs = 1;
  cfg.warmup_epochs = 0;
  REQUIRE(app::train(cfg, tiny_net(5), tiny_data(), quiet()).status == app::TrainStatus::finished);
  REQUIRE_FALSE(fs::exists(dir / dead));
}

TEST_CASE("trainer faults: a failed metrics write names metrics.csv", "[app][trainer]") {
  apptest::TempDir dir;
  // The atomic write of metrics.csv goes through metrics.csv.tmp-<our pid>: pointing that at /dev/full makes the
  // write fail as on a full disk (a link at metrics.csv itself would simply be replaced by the rename).
  fs::create_symlink("/dev/full", dir / ("metrics.csv.tmp-" + std::to_string(::getpid())));
  app::TrainConfig cfg = tiny_config(dir.str());
  cfg.epochs = 1;
  cfg.warmup_epochs = 0;
  REQUIRE_THROWS_WITH(app::train(cfg, tiny_net(5), tiny_data(), quiet()),
                      Catch::Contains("cannot write " + dir / "metrics.csv: No space left on device"));
  REQUIRE_FALSE(fs::exists(dir / "metrics.csv"));
}

TEST_CASE("trainer faults: a final batch of one example is dropped, --drop-last drops any incomplete one",
          "[app][trainer]") {
  REQUIRE(app::steps_per_epoch(49, 16, false) == 3);  // 16+16+16, the 49th example waits for another epoch
  REQUIRE(app::steps_per_epoch(50, 16, false) == 4);
  REQUIRE(app::steps_per_epoch(50, 16, true) == 3);
  REQUIRE(app::steps_per_epoch(48, 16, true) == 3);
  REQUIRE(app::steps_per_epoch(2, 16, false) == 1);
  REQUIRE_THROWS_WITH(app::steps_per_epoch(1, 16, false), Catch::Contains("single training example"));
  REQUIRE_THROWS_WITH(app::steps_per_epoch(15, 16, true),
                      Catch::Contains("--drop-last") && Catch::Contains("lower --batch-size"));

  // Batch norm over 1x1 maps: a batch of one example has one value per channel, which it refuses.
  auto net = [] {
    engine::default_generator().seed(4);
    using namespace engine::nn;
    return std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
        std::make_shared<Conv2d>(1, 4, 3, 1, 1, false), std::make_shared<AdaptiveAvgPool2d>(1, 1),
        std::make_shared<BatchNorm2d>(4), std::make_shared<Flatten>(), std::make_shared<Linear>(4, 10)});
  };
  apptest::TempDir dir;
  app::FashionMnist data = tiny_data();
  data.train = apptest::synthetic_images(3 * 16 + 1, 1);
  app::TrainConfig cfg = no_split(dir / "a");
  cfg.epochs = 2;
  app::TrainResult r = app::train(cfg, net(), data, quiet());
  REQUIRE(r.status == app::TrainStatus::finished);
  REQUIRE(engine::read_safetensors_metadata(dir / "a/last.safetensors")["global_step"] == "6");
  cfg.out = dir / "b";
  cfg.drop_last = true;
  data.train = apptest::synthetic_images(3 * 16 + 5, 1);
  REQUIRE(app::train(cfg, net(), data, quiet()).status == app::TrainStatus::finished);
  REQUIRE(engine::read_safetensors_metadata(dir / "b/last.safetensors")["global_step"] == "6");
}
