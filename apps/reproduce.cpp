// reproduce: the experiments of He et al. 2016 on Fashion-MNIST, one command each, resumable, with a report.
// `reproduce degradation --scale quick`, `reproduce report reproduction`. See docs/reproduction-plan.md or --help.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "apps/common/cli.h"
#include "apps/common/experiments.h"
#include "apps/common/fmnist.h"
#include "apps/common/omp_env.h"
#include "apps/common/plot.h"
#include "apps/common/trainer.h"
#include "engine/device.h"
#include "engine/error.h"
#include "git_commit.h"  // REPRODUCE_GIT_COMMIT, generated at build time (cmake/git_commit.cmake)
#include "kernels/cpu/blas_info.h"

namespace {

std::string description() {
  std::string out =
      "Trains the runs of each named EXPERIMENT in this process (the trainer of train_fmnist), one folder per run\n"
      "in --out DIR/<experiment>-<scale>/<run>/, then writes DIR/report.md. Invoking it again skips finished runs\n"
      "and resumes an interrupted one from its last.safetensors, so an experiment can be completed over several\n"
      "invocations or machines (copy DIR along). Ctrl-C or SIGTERM (or --time-limit) stops the current run with a\n"
      "checkpoint. A diverged run is recorded and skipped afterwards (delete its folder to retry).\n"
      "`reproduce report DIR [FILE]` rebuilds DIR/report.md (or FILE, e.g. docs/reproduction.md) from whatever\n"
      "runs exist in DIR and names the missing ones.\n"
      "Exit codes: 0 done, 1 error, 2 bad usage, 3 a run diverged, 75 time limit reached, 130/143 interrupted.\n\n"
      "experiments (all: every one, in this order):\n";
  for (const auto& d : app::experiment_defs()) {
    out += "  " + d.name + ": " + d.title + "\n    ";
    for (char c : d.help) out += c == '\n' ? std::string("\n    ") : std::string(1, c);
    out += "\n\n";
  }
  out +=
      "scales: quick (the default) fits 2 CPU cores: a training subset and few epochs; full is the paper's size,\n"
      "for a GPU. Accuracy is always reported at the last epoch, never the best epoch on the test set.";
  return out;
}

// Fig. 6: plain nets left, residual nets right, same axes; thin dashed training error every K steps and bold
// test error per epoch, against iterations (app::runs_figure's default). Runs without steps.csv are left out.
std::vector<std::string> degradation_figures(const std::string& dir, const std::vector<app::FigureRun>& runs) {
  std::vector<app::RunData> plain, residual;
  for (const auto& r : runs) {
    if (!std::filesystem::exists(r.dir + "/steps.csv")) continue;
    (r.family == "plain" ? plain : residual).push_back(app::load_run(r.dir, r.name));
  }
  std::vector<std::vector<app::RunData>> panels;
  std::vector<std::string> titles;
  if (!plain.empty()) panels.push_back(plain), titles.push_back("plain");
  if (!residual.empty()) panels.push_back(residual), titles.push_back("ResNet");
  if (panels.empty()) return {};
  app::RunPlotOptions opt;
  // The paper's thin curves are smooth; ours average the logged training error over a third of an epoch.
  opt.smooth = std::max<int64_t>(1, runs.front().steps_per_epoch / 3);
  if (opt.smooth > 1)
    opt.subtitle = fmt::format("training error (thin): mean over the last {} iterations; test error (bold): per epoch",
                               opt.smooth);
  std::vector<std::string> files;
  for (const char* ext : {".png", ".svg"}) {
    app::save_figure(app::runs_figure(panels, titles, opt), dir + "/fig6" + ext);
    files.push_back(std::string("fig6") + ext);
  }
  return {files[0]};  // the PNG is embedded; the SVG lies beside it
}

}  // namespace

int main(int argc, char** argv) {
  app::relaunch_with_passive_openmp(argv);
  app::RunnerOptions opt;
  opt.commit = REPRODUCE_GIT_COMMIT;
  for (int i = 0; i < argc; ++i) opt.command += (i ? " " : "") + std::string(i ? argv[i] : "reproduce");
  std::vector<std::string> positional;
  CLI::App cli{description(), "reproduce"};
  app::configure_cli(cli, "reproduce EXPERIMENT[,...] [options]\n       reproduce report DIR [FILE]");
  cli.add_option("ARGS", positional, "experiments, or: report DIR [FILE]");
  auto add = [&](const char* name, const char* metavar, const std::string& help,
                 std::function<void(const std::string&)> set) { app::add_option(cli, name, metavar, help, set); };
  add("scale", "quick|full", "Size of every run (default quick).",
      [&](const std::string& v) { opt.scale = app::parse_scale(v); });
  add("only", "RUN,...", "Only these runs of the experiments (e.g. plain20,plain56, or degradation/resnet56).",
      [&](const std::string& v) { opt.only = app::split_list(v); });
  add("out", "DIR", "Where the runs and report.md go (default reproduction).",
      [&](const std::string& v) { opt.out = v; });
  add("device", "DEV", "auto (CUDA when available, else CPU), cpu, cuda or cuda:N (default auto).",
      [&](const std::string& v) {
        if (v != "auto") engine::Device::parse(v);  // throws naming the valid forms
        opt.device = v;
      });
  add("conv", "ENGINE", "Convolution engine on CUDA: native, cudnn or fastest (default native).",
      [&](const std::string& v) {
        opt.conv = app::parse_choice(v, "conv", {"native", "cudnn", "fastest"});
      });
  add("tf32", "", "The same as --precision tf32.", [&](const std::string&) { opt.tf32 = true; });
  add("precision", "MATH",
      "fp32 (default), tf32 (CUDA: TF32 tensor cores for float32 GEMMs) or bf16 (mixed precision: bf16 "
      "activations and layer operands, float32 weights, statistics and loss), as train_fmnist --precision.",
      [&](const std::string& v) {
        opt.precision = app::parse_choice(v, "precision", {"fp32", "tf32", "bf16"});
      });
  add("layout", "nchw|nhwc|auto",
      "Memory order of the activations, nchw (default), nhwc (channels last) or auto (each run times both on its "
      "first batch and trains in the faster), as train_fmnist --layout.",
      [&](const std::string& v) {
        opt.layout = app::parse_choice(v, "layout", {"nchw", "nhwc", "auto"});
      });
  add("cuda-graphs", "off|on",
      "Replay each training step as a CUDA graph, as train_fmnist --cuda-graphs (default off).",
      [&](const std::string& v) {
        opt.cuda_graphs = app::parse_choice(v, "cuda-graphs", {"off", "on"});
      });
  add("threads", "N", "CPU threads for OpenMP and OpenBLAS (default 0: their defaults).",
      [&](const std::string& v) { opt.threads = app::parse_int(v, "threads", 0, 1024); });
  add("data", "DIR", "Fashion-MNIST IDX folder (default /usr/share/datasets/fashion-mnist).",
      [&](const std::string& v) { opt.data = v; });
  add("time-limit", "MIN",
      "Stop after MIN minutes (the current run checkpointed; run the same command again to go on), e.g. to fit a "
      "machine's time slot. Default 0: no limit.",
      [&](const std::string& v) { opt.time_limit_seconds = 60 * app::parse_double(v, "time-limit", 0, 1e6); });
  add("epochs", "N", "Smoke tests: train every run for N epochs instead of its definition's.",
      [&](const std::string& v) { opt.epochs = app::parse_int(v, "epochs", 1, 100000); });
  add("limit-train", "N", "Smoke tests: every run on the first N training images (0: all).",
      [&](const std::string& v) { opt.limit_train = app::parse_int(v, "limit-train", 0, INT64_MAX); });
  add("limit-test", "N", "Smoke tests: every run evaluated on the first N test images (0: all).",
      [&](const std::string& v) { opt.limit_test = app::parse_int(v, "limit-test", 0, INT64_MAX); });
  if (std::optional<int> done = app::parse_cli(cli, argc, argv)) return *done;

  std::vector<std::string> experiments;
  try {
    if (!positional.empty() && positional[0] == "report") {
      ENGINE_CHECK(positional.size() == 2 || positional.size() == 3,
                   "usage: reproduce report DIR [FILE] (DIR: the --out folder of earlier runs)");
      const std::string path =
          app::write_report(positional[1], positional.size() == 3 ? positional[2] : "", degradation_figures);
      fmt::print("wrote {}\n", path);
      return 0;
    }
    ENGINE_CHECK(!positional.empty(), "name an experiment: ", app::join(app::experiment_names()),
                 " or all (see reproduce --help)");
    for (const auto& p : positional)
      for (const auto& name : app::split_list(p)) {
        if (name == "all") {
          experiments = app::experiment_names();
          continue;
        }
        app::experiment_runs(name, opt.scale);  // throws naming the experiments
        experiments.push_back(name);
      }
    for (const auto& e : experiments)  // checks --only and every run's configuration before anything runs
      for (const auto& r : app::select_runs(e, experiments, opt)) app::run_config(e, r, opt);
  } catch (const std::exception& e) {
    fmt::print(stderr, "reproduce: error: {}\n", e.what());
    return 2;
  }

  app::FashionMnist data;
  try {
    data = app::load_fashion_mnist(opt.data);
  } catch (const std::exception& e) {
    fmt::print(stderr, "reproduce: error: {}\n", e.what());
    return 2;
  }
  fmt::print("{}\n", kernels::cpu::machine_description());
  int exit_code = 0;
  try {
    app::install_interrupt_handler();
    for (const auto& e : experiments) {
      const std::vector<app::RunSpec> runs = app::select_runs(e, experiments, opt);
      if (runs.empty()) continue;
      const app::RunnerResult r = app::run_experiment(e, runs, opt, data, app::TrainHooks{});
      if (r.stopped) {
        exit_code = r.exit_code;
        break;
      }
      if (exit_code == 0) exit_code = r.exit_code;  // 3: a run diverged; the others still ran
    }
    fmt::print("reproduce: report in {}\n", app::write_report(opt.out, "", degradation_figures));
  } catch (const std::exception& e) {
    fmt::print(stderr, "reproduce: error: {}\n", e.what());
    return 1;
  }
  return exit_code;
}
