// reproduce: the experiment definitions, skipping and resuming runs of a partly finished experiment, and the
// report built from a folder where some runs are missing.
#include <cblas.h>
#include <omp.h>

#include <CLI/CLI.hpp>
#include <catch2/catch.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "apps/common/cli.h"
#include "apps/common/experiments.h"
#include "apps/common/trainer.h"
#include "models/registry.h"
#include "tests/app/app_test_util.h"
#include "tests/app/tiny_run.h"

namespace fs = std::filesystem;

namespace {

using apptest::slurp;

bool contains(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

// Learning rate of 0-based global iteration i of a run.
double lr_at(const app::TrainConfig& cfg, int64_t i) {
  const int64_t spe = app::steps_per_epoch(cfg.limit_train > 0 ? cfg.limit_train : 60000, cfg.batch_size, false);
  return app::learning_rate(cfg, i / spe, i % spe, spe);
}

// The first iteration from `begin` on whose learning rate is below `lr` (the iterations run 0 .. total-1).
int64_t first_below(const app::TrainConfig& cfg, double lr, int64_t begin, int64_t total) {
  for (int64_t i = begin; i < total; ++i)
    if (lr_at(cfg, i) < lr) return i;
  return -1;
}

}  // namespace

TEST_CASE("reproduce: the degradation experiment is the paper's Sec. 4.2 setup", "[app][reproduce]") {
  for (app::Scale scale : {app::Scale::quick, app::Scale::full}) {
    const std::vector<app::RunSpec> runs = app::experiment_runs("degradation", scale);
    std::vector<std::string> names;
    for (const auto& r : runs) names.push_back(r.name);
    std::vector<std::string> want = {"plain20",  "plain32",  "plain44",  "plain56",
                                     "resnet20", "resnet32", "resnet44", "resnet56"};
    if (scale == app::Scale::full) want.push_back("resnet110");
    REQUIRE(names == want);
    for (const auto& r : runs) {
      INFO(r.name);
      const app::TrainConfig& c = r.cfg;
      REQUIRE(c.model == r.name);
      REQUIRE(r.family == (r.name.rfind("plain", 0) == 0 ? "plain" : "residual"));
      REQUIRE(c.lr == 0.1);
      REQUIRE(c.momentum == 0.9);
      REQUIRE_FALSE(c.nesterov);
      REQUIRE(c.weight_decay == 1e-4);
      REQUIRE(c.batch_size == 128);
      REQUIRE(c.schedule == "step");
      REQUIRE(c.label_smoothing == 0);
      REQUIRE(c.augment);
      REQUIRE(c.normalize);
      REQUIRE(c.resize == 28);
      REQUIRE(c.init == "model");
      REQUIRE(c.warmup_epochs == (r.depth == 110 ? 1 : 0));
      REQUIRE(c.val_split == 0);

      // lr / 10 at 50% and at 75% of the iterations, applied per step.
      const int64_t spe = app::steps_per_epoch(c.limit_train > 0 ? c.limit_train : 60000, 128, false);
      const int64_t total = spe * c.epochs;
      const int64_t first = r.depth == 110 ? spe : 0;  // after the warmup
      REQUIRE(lr_at(c, first) == 0.1);
      const int64_t drop1 = first_below(c, 0.05, first, total), drop2 = first_below(c, 0.005, first, total);
      REQUIRE(std::abs(static_cast<double>(drop1) - 0.5 * total) <= 1);
      REQUIRE(std::abs(static_cast<double>(drop2) - 0.75 * total) <= 1);
      REQUIRE(lr_at(c, drop1) == Approx(0.01).epsilon(1e-12));
      REQUIRE(lr_at(c, drop2) == Approx(0.001).epsilon(1e-12));
      REQUIRE(lr_at(c, total - 1) == Approx(0.001).epsilon(1e-12));
      if (scale == app::Scale::full) {
        REQUIRE(c.limit_train == 0);
        REQUIRE(c.limit_test == 0);
        // The paper's 64k iterations, 32k and 48k, to within one epoch.
        REQUIRE(std::abs(total - 64000) < spe);
        REQUIRE(std::abs(drop1 - 32000) < spe);
        REQUIRE(std::abs(drop2 - 48000) < spe);
      } else {
        REQUIRE(c.limit_train > 0);
      }
    }
  }
}

TEST_CASE("reproduce: depth and recipe use the best recipe, the same for every depth", "[app][reproduce]") {
  for (app::Scale scale : {app::Scale::quick, app::Scale::full}) {
    const std::vector<app::RunSpec> runs = app::experiment_runs("depth", scale);
    REQUIRE(runs.size() == 5);
    const char* want[] = {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"};
    for (size_t i = 0; i < runs.size(); ++i) {
      INFO(runs[i].name);
      REQUIRE(runs[i].name == want[i]);
      REQUIRE(runs[i].cfg.resize == (scale == app::Scale::quick ? 28 : 96));
      app::TrainConfig a = runs[i].cfg, b = runs[0].cfg;
      a.model = b.model = "";
      REQUIRE(app::config_to_json(a) == app::config_to_json(b));
    }
    const std::vector<app::RunSpec> recipe = app::experiment_runs("recipe", scale);
    REQUIRE(recipe.size() == 1);
    const app::TrainConfig& c = recipe[0].cfg;
    REQUIRE(c.model == "resnet20");
    REQUIRE(c.resize == 28);
    REQUIRE(c.schedule == "cosine");
    REQUIRE(c.warmup_epochs == 1);
    REQUIRE(c.label_smoothing == 0.1);
    REQUIRE(c.nesterov);
    REQUIRE(c.augment);
    REQUIRE(c.normalize);
    REQUIRE(c.limit_train == 0);
    REQUIRE(c.limit_test == 0);
    app::TrainConfig d = runs[0].cfg;  // depth uses the same recipe; only the size fields differ
    d.model = c.model, d.resize = c.resize, d.epochs = c.epochs, d.limit_train = c.limit_train;
    d.limit_test = c.limit_test;
    REQUIRE(app::config_to_json(d) == app::config_to_json(c));
  }
  // The best recipe's own switches (EMA, no weight decay on BN/bias) are on; random erasing at full scale only.
  const app::TrainConfig c = app::experiment_runs("recipe", app::Scale::quick)[0].cfg;
  REQUIRE(c.erase == 0);
  REQUIRE(app::experiment_runs("recipe", app::Scale::full)[0].cfg.erase == 0.5);
  REQUIRE(app::experiment_runs("depth", app::Scale::full)[0].cfg.erase == 0.5);
  REQUIRE(c.erase_fill == "random");
  REQUIRE(c.ema == 0.999);
  REQUIRE(c.no_wd_bn);
  REQUIRE_THROWS_WITH(app::experiment_runs("degredation", app::Scale::quick),
                      Catch::Contains("degradation, depth, recipe"));
}

TEST_CASE("reproduce: the equivalent train_fmnist command parses back to the same configuration", "[app][reproduce]") {
  for (const auto& name : app::experiment_names())
    for (const auto& r : app::experiment_runs(name, app::Scale::full)) {
      INFO(r.name);
      const std::string cmd = app::train_command(r.cfg);
      std::vector<std::string> words;
      std::istringstream ss(cmd);
      for (std::string w; ss >> w;) words.push_back(w);
      std::vector<const char*> argv;
      for (const auto& w : words) argv.push_back(w.c_str());
      app::TrainConfig parsed;
      CLI::App cli{"", "train_fmnist"};
      app::configure_cli(cli, "train_fmnist MODEL [options]");
      app::add_train_options(cli, parsed);
      app::parse_or_throw(cli, static_cast<int>(argv.size()), argv.data());
      REQUIRE(parsed.model == r.cfg.model);
      REQUIRE(app::config_to_json(parsed) == app::config_to_json(r.cfg));
    }
}

TEST_CASE("reproduce: --only selects runs and names the valid ones", "[app][reproduce]") {
  app::RunnerOptions opt;
  opt.only = {"plain56", "degradation/resnet20"};
  const auto runs = app::select_runs("degradation", {"degradation"}, opt);
  REQUIRE(runs.size() == 2);
  REQUIRE(runs[0].name == "plain56");
  REQUIRE(runs[1].name == "resnet20");
  opt.only = {"resnet18"};  // a run of depth, not of degradation
  REQUIRE(app::select_runs("degradation", {"degradation", "depth"}, opt).empty());
  REQUIRE(app::select_runs("depth", {"degradation", "depth"}, opt).size() == 1);
  opt.only = {"plain57"};
  REQUIRE_THROWS_WITH(app::select_runs("degradation", {"degradation"}, opt),
                      Catch::Contains("'plain57' is no run") && Catch::Contains("plain56"));
}

namespace {

// Two real nets of the degradation experiment shrunk to a few milliseconds: 64 synthetic images at 8 px.
std::vector<app::RunSpec> tiny_degradation() {
  std::vector<app::RunSpec> runs = app::experiment_runs("degradation", app::Scale::quick);
  std::vector<app::RunSpec> out = {runs[0], runs[4]};  // plain20, resnet20
  for (auto& r : out) {
    r.cfg.resize = 8;
    r.cfg.batch_size = 32;
    r.cfg.epochs = 2;
    r.cfg.limit_train = 64;
    r.cfg.limit_test = 32;
  }
  return out;
}

// The runs below use one thread (on this shared 2-core machine, 20-layer nets at 8 px took 40 s with two
// threads spinning against each other and 3 s with one); the suite's thread counts are restored afterwards.
struct RestoreThreads {
  int omp = omp_get_max_threads(), blas = openblas_get_num_threads();
  ~RestoreThreads() {
    omp_set_num_threads(omp);
    openblas_set_num_threads(blas);
  }
};

app::RunnerOptions tiny_options(const std::string& out) {
  app::RunnerOptions opt;
  opt.out = out;
  opt.device = "cpu";
  opt.threads = 1;
  opt.log = nullptr;
  opt.commit = "abc123";
  opt.command = "reproduce degradation --test";
  return opt;
}

std::vector<std::string> log_lines(const std::string& out) {
  std::vector<std::string> lines;
  std::ifstream f(out + "/reproduce.log");
  for (std::string l; std::getline(f, l);) lines.push_back(l.substr(l.find(' ') + 1));  // without the time
  return lines;
}

}  // namespace

TEST_CASE("reproduce: a second invocation skips the finished run and resumes the interrupted one", "[app][reproduce]") {
  apptest::TempDir dir;
  RestoreThreads restore;
  app::FashionMnist data;
  data.train = apptest::synthetic_images(64, 1);
  data.test = apptest::synthetic_images(32, 2);
  const std::vector<app::RunSpec> runs = tiny_degradation();
  const app::RunnerOptions opt = tiny_options(dir.str());
  app::clear_interrupt();

  // First invocation: Ctrl-C during the first step of the second run.
  app::TrainHooks hooks = apptest::quiet();
  int steps_seen = 0;
  hooks.after_step = [&](int64_t, int64_t, engine::nn::Module&) {
    if (++steps_seen == 4 + 1) app::request_interrupt(SIGINT);  // plain20 runs 2 x 2 steps; then resnet20's first
  };
  app::RunnerResult first = app::run_experiment("degradation", runs, opt, data, hooks);
  REQUIRE(first.stopped);
  REQUIRE(first.exit_code == 130);
  REQUIRE(first.runs.size() == 2);
  REQUIRE(first.runs[0].second == app::RunOutcome::finished);
  REQUIRE(first.runs[1].second == app::RunOutcome::interrupted);
  REQUIRE_FALSE(app::interrupt_requested());  // cleared, so the caller can go on

  const std::string plain = dir / "degradation-quick/plain20", res = dir / "degradation-quick/resnet20";
  REQUIRE(contains(slurp(plain + "/run.json"), "\"status\": \"finished\""));
  REQUIRE(contains(slurp(res + "/run.json"), "\"status\": \"partial\""));
  const auto plain_time = fs::last_write_time(plain + "/last.safetensors");
  const std::string plain_metrics = slurp(plain + "/metrics.csv");

  // A run folder made with another configuration is refused, naming it.
  std::vector<app::RunSpec> changed = runs;
  changed[1].cfg.lr = 0.2;
  REQUIRE_THROWS_WITH(app::run_experiment("degradation", changed, opt, data, apptest::quiet()),
                      Catch::Contains(res) && Catch::Contains("another configuration") && Catch::Contains("--lr"));

  // Second invocation: only the missing part runs.
  app::RunnerResult second = app::run_experiment("degradation", runs, opt, data, apptest::quiet());
  REQUIRE_FALSE(second.stopped);
  REQUIRE(second.exit_code == 0);
  REQUIRE(second.runs.size() == 2);
  REQUIRE(second.runs[0].second == app::RunOutcome::skipped);
  REQUIRE(second.runs[1].second == app::RunOutcome::finished);
  REQUIRE(fs::last_write_time(plain + "/last.safetensors") == plain_time);
  REQUIRE(slurp(plain + "/metrics.csv") == plain_metrics);
  REQUIRE(app::read_metrics_csv(res + "/metrics.csv").size() == 2);
  const std::string rj = slurp(res + "/run.json");
  REQUIRE(contains(rj, "\"status\": \"finished\""));
  REQUIRE(contains(rj, "\"from_step\": 1"));  // the second session began after the first run's one step
  REQUIRE(contains(rj, "\"commit\": \"abc123\""));

  // The log names every event, in order (the refused invocation got as far as skipping plain20).
  const std::vector<std::string> want = {"degradation-quick/plain20 start",
                                         "degradation-quick/plain20 finished",
                                         "degradation-quick/resnet20 start",
                                         "degradation-quick/resnet20 stopped (interrupted)",
                                         "degradation-quick/plain20 skipped (finished)",
                                         "degradation-quick/plain20 skipped (finished)",
                                         "degradation-quick/resnet20 resume from epoch 1 step 2",
                                         "degradation-quick/resnet20 finished"};
  REQUIRE(log_lines(dir.str()) == want);

  // Third: nothing left to do.
  app::RunnerResult third = app::run_experiment("degradation", runs, opt, data, apptest::quiet());
  REQUIRE(third.runs[0].second == app::RunOutcome::skipped);
  REQUIRE(third.runs[1].second == app::RunOutcome::skipped);

  // The report names the six runs still missing and gives the two present ones' last-epoch numbers.
  const std::string report = app::build_report(dir.str());
  REQUIRE(contains(report, "**Missing runs:** plain32, plain44, plain56, resnet32, resnet44, resnet56."));
  const app::EpochRecord last = app::read_metrics_csv(plain + "/metrics.csv").back();
  char err[32];
  std::snprintf(err, sizeof err, "| %.2f |", 100 * (1 - last.train_acc));
  REQUIRE(contains(report, "| plain20 | 20 | "));
  REQUIRE(contains(report, err));
  REQUIRE(contains(report, "not decided yet"));
  REQUIRE(contains(report, "## depth: not run"));
  REQUIRE(contains(report, "## recipe: not run"));
  REQUIRE(contains(report, "abc123"));
  // The tiny runs are not the definitions' runs, and the report says so.
  REQUIRE(contains(report,
                   "differs from the definition: epochs 2, batch-size 32, resize 8, limit-train 64, "
                   "limit-test 32)"));
}

TEST_CASE("reproduce: --time-limit stops with a checkpoint and exit 75", "[app][reproduce]") {
  apptest::TempDir dir;
  RestoreThreads restore;
  app::FashionMnist data;
  data.train = apptest::synthetic_images(64, 1);
  data.test = apptest::synthetic_images(32, 2);
  app::RunnerOptions opt = tiny_options(dir.str());
  // The limit is checked before each run and after each step: the first step outlasts it.
  opt.time_limit_seconds = 0.2;
  app::clear_interrupt();
  const std::vector<app::RunSpec> runs = tiny_degradation();
  app::TrainHooks hooks = apptest::quiet();
  hooks.after_step = [](int64_t, int64_t, engine::nn::Module&) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  };
  app::RunnerResult r = app::run_experiment("degradation", runs, opt, data, hooks);
  REQUIRE(r.stopped);
  REQUIRE(r.exit_code == 75);
  REQUIRE(r.runs.size() == 1);  // plain20 stopped; resnet20 not started
  REQUIRE(r.runs.at(0).second == app::RunOutcome::time_limit);

  // Out of time before a run starts: it is not started.
  opt.time_limit_seconds = 1e-9;
  app::RunnerResult r2 = app::run_experiment("degradation", {runs[1]}, opt, data, apptest::quiet());
  REQUIRE(r2.exit_code == 75);
  REQUIRE(r2.runs.at(0).second == app::RunOutcome::time_limit);
  REQUIRE_FALSE(fs::exists(dir / "degradation-quick/resnet20"));
  // A Ctrl-C that arrived after the last step of the previous run stops before the next one, with exit 130.
  opt.time_limit_seconds = 0;
  app::request_interrupt(SIGINT);
  app::RunnerResult r3 = app::run_experiment("degradation", {runs[1]}, opt, data, apptest::quiet());
  REQUIRE(r3.exit_code == 130);
  REQUIRE(r3.runs.at(0).second == app::RunOutcome::interrupted);
  REQUIRE_FALSE(fs::exists(dir / "degradation-quick/resnet20"));
  REQUIRE(fs::exists(dir / "degradation-quick/plain20/last.safetensors"));
  REQUIRE_FALSE(app::interrupt_requested());
}

namespace {
// A run folder with a given last-epoch training accuracy (metrics.csv and the config.json epochs).
void fake_run(const std::string& dir, int64_t epochs, int64_t planned, double train_acc) {
  fs::create_directories(dir);
  std::vector<app::EpochRecord> h(epochs);
  for (int64_t i = 0; i < epochs; ++i) {
    h[i].epoch = i + 1;
    h[i].train_acc = train_acc;
    h[i].test_acc = train_acc - 0.01;
    h[i].val_loss = h[i].val_acc = NAN;
  }
  app::write_metrics_files(dir, h);
  std::ofstream(dir + "/config.json") << "{\"epochs\": " << planned << "}\n";
}
}  // namespace

TEST_CASE("reproduce: the report says whether plain-56 trains worse than plain-20", "[app][reproduce]") {
  for (bool degrades : {true, false}) {
    apptest::TempDir dir;
    fake_run(dir / "degradation-quick/plain20", 2, 2, 0.90);
    fake_run(dir / "degradation-quick/plain56", 2, 2, degrades ? 0.80 : 0.95);
    fake_run(dir / "degradation-quick/resnet56", 1, 2, 0.95);  // unfinished
    const std::string report = app::build_report(dir.str());
    INFO(report);
    REQUIRE(contains(report, degrades ? "half of the effect shows" : "the effect does not show"));
    REQUIRE(contains(report, degrades ? "plain-56's final training error is 20.00% against plain-20's 10.00%"
                                      : "plain-56's final training error is 5.00% against plain-20's 10.00%"));
    REQUIRE(contains(report, "**Unfinished runs** (numbers at their last epoch so far): resnet56 (1 of 2 epochs)."));
    REQUIRE(contains(report, "**Missing runs:** plain32, plain44, resnet20, resnet32, resnet44."));
    const int64_t params = models::create("resnet56")->num_parameters();
    REQUIRE(contains(report, "| resnet56 | 56 | " + std::to_string(params) + " | 1 of 2 | 5.00 | 6.00 | 6.97 |"));
    REQUIRE(contains(report, "| plain20 | 20 | "));
    REQUIRE(contains(report, "not tabulated"));
    REQUIRE(contains(slurp(app::write_report(dir.str())), "**Missing runs:** plain32"));
    REQUIRE(contains(report, "Figures (Fig. 6 style) are not drawn by this build yet."));

    // The figures hook gets the runs present, with their steps per epoch, and its images are embedded.
    std::vector<app::FigureRun> seen;
    const std::string with_figures =
        app::build_report(dir.str(), [&](const std::string& exp_dir, const std::vector<app::FigureRun>& runs) {
          REQUIRE(exp_dir == dir / "degradation-quick");
          seen = runs;
          return std::vector<std::string>{"fig6.png"};
        });
    REQUIRE(seen.size() == 3);
    REQUIRE(seen[0].name == "plain20");
    REQUIRE(seen[0].family == "plain");
    REQUIRE(seen[0].dir == dir / "degradation-quick/plain20");
    REQUIRE(seen[0].steps_per_epoch == 469);  // all 60000 images at batch 128
    REQUIRE(seen[2].name == "resnet56");
    REQUIRE(contains(with_figures, "![degradation](degradation-quick/fig6.png)"));
    REQUIRE_FALSE(contains(with_figures, "not drawn by this build"));

    // A report written outside DIR (docs/reproduction.md for DIR docs/reproduction) links from its own folder.
    const auto fig = [](const std::string&, const std::vector<app::FigureRun>&) {
      return std::vector<std::string>{"fig6.png"};
    };
    fs::create_directories(dir / "docs");
    const std::string outside = slurp(app::write_report(dir.str(), dir / "docs/report.md", fig));
    REQUIRE(contains(outside, "![degradation](../degradation-quick/fig6.png)"));
    REQUIRE(contains(slurp(app::write_report(dir.str(), "", fig)), "![degradation](degradation-quick/fig6.png)"));
  }
}

TEST_CASE("reproduce: a diverged run is recorded, reported and skipped afterwards", "[app][reproduce]") {
  apptest::TempDir dir;
  RestoreThreads restore;
  app::FashionMnist data;
  data.train = apptest::synthetic_images(64, 1);
  data.test = apptest::synthetic_images(32, 2);
  const app::RunnerOptions opt = tiny_options(dir.str());
  app::clear_interrupt();
  std::vector<app::RunSpec> runs = {tiny_degradation()[0]};
  runs[0].cfg.lr = 100;  // blows up within the first steps
  app::RunnerResult first = app::run_experiment("degradation", runs, opt, data, apptest::quiet());
  REQUIRE(first.exit_code == 3);
  REQUIRE_FALSE(first.stopped);
  REQUIRE(first.runs.at(0).second == app::RunOutcome::diverged);
  REQUIRE(contains(slurp(dir / "degradation-quick/plain20/run.json"), "\"status\": \"diverged\""));
  app::RunnerResult second = app::run_experiment("degradation", runs, opt, data, apptest::quiet());
  REQUIRE(second.exit_code == 0);
  REQUIRE(second.runs.at(0).second == app::RunOutcome::skipped);
  REQUIRE(log_lines(dir.str()).back() == "degradation-quick/plain20 skipped (diverged)");
  const std::string report = app::build_report(dir.str());
  REQUIRE(contains(report, "delete the folder to retry): plain20."));
  REQUIRE(contains(report, "**Missing runs:** plain32, plain44, plain56, resnet20,"));  // plain20 is not missing
}

TEST_CASE("reproduce: the report lists the trainer's notices of each run", "[app][reproduce]") {
  apptest::TempDir dir;
  fake_run(dir / "degradation-quick/plain56", 2, 2, 0.80);
  std::ofstream(dir / "degradation-quick/plain56/run.json")
      << R"({"status": "finished", "sessions": [{"notices": ["test loss 943.9 above the divergence bound"]}]})";
  const std::string report = app::build_report(dir.str());
  INFO(report);
  REQUIRE(
      contains(report, "Notices printed during training:\n\n- plain56: test loss 943.9 above the divergence bound\n"));
  fs::remove(dir / "degradation-quick/plain56/run.json");
  REQUIRE_FALSE(contains(app::build_report(dir.str()), "Notices printed during training"));
}

TEST_CASE("reproduce: the degradation verdict needs the residual pair to tell degradation from under-training",
          "[app][reproduce]") {
  struct Case {
    double resnet56_acc;
    const char* verdict;
  };
  // plain20 90%, plain56 80% train accuracy; resnet20 92%.
  for (const Case& c : {Case{0.93,
                             "the effect shows.** plain-56's final training error is 20.00% against "
                             "plain-20's 10.00%; with shortcuts, resnet56 7.00% against resnet20 8.00%"},
                        Case{0.85,
                             "not separated from under-training.** plain-56's final training error is 20.00% "
                             "against plain-20's 10.00%; with shortcuts, resnet56 15.00% against resnet20 "
                             "8.00%: the deeper net trains worse in both families"}}) {
    apptest::TempDir dir;
    fake_run(dir / "degradation-quick/plain20", 2, 2, 0.90);
    fake_run(dir / "degradation-quick/plain56", 2, 2, 0.80);
    fake_run(dir / "degradation-quick/resnet20", 2, 2, 0.92);
    fake_run(dir / "degradation-quick/resnet56", 2, 2, c.resnet56_acc);
    const std::string report = app::build_report(dir.str());
    INFO(report);
    REQUIRE(contains(report, c.verdict));
    REQUIRE(contains(report, c.resnet56_acc > 0.9
                                 ? "at the same depth: 20 layers 2.00 points, 56 layers 13.00 points."
                                 : "at the same depth: 20 layers 2.00 points, 56 layers 5.00 points."));
  }
}
