// The experiments of `reproduce` (He et al. 2016 on Fashion-MNIST): each is a named list of training runs, at a
// quick scale (a training subset and few epochs, for 2 CPU cores) or the full scale. The runner trains them in
// this process with the trainer (apps/common/trainer.h), one folder per run, and skips or resumes what an
// earlier invocation finished or left; the report is rebuilt from whatever run folders exist.
//
// Layout of --out DIR:
//   DIR/<experiment>-<scale>/<run>/   a train_fmnist run folder (config.json, metrics.*, checkpoints) plus
//                                     run.json: how the run ended and, per invocation, commit, device, command
//   DIR/reproduce.log                 one line per run started, resumed, skipped, finished or stopped
//   DIR/report.md                     written by `reproduce report DIR` (and after every invocation)
#pragma once
#include <cstdint>
#include <cstdio>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "apps/common/config.h"
#include "apps/common/fmnist.h"
#include "apps/common/trainer.h"

namespace app {

enum class Scale { quick, full };
std::string scale_name(Scale s);
Scale parse_scale(const std::string& s);  // throws naming the choices

struct RunSpec {
  std::string name;    // the run's folder name, e.g. "plain20"
  std::string family;  // degradation: "plain" | "residual"; else ""
  int depth = 0;       // layers with weights, as in the paper's names
  TrainConfig cfg;     // everything but out, device, data, threads and conv (set per invocation)
};

struct ExperimentDef {
  std::string name;   // degradation | depth | recipe
  std::string title;  // one line
  std::string help;   // for --help: what it runs, with which recipe, at each scale and why
};
const std::vector<ExperimentDef>& experiment_defs();
std::vector<std::string> experiment_names();
// The runs of `experiment` at `scale`; throws naming the experiments for an unknown name.
std::vector<RunSpec> experiment_runs(const std::string& experiment, Scale scale);

// ---- recipes ----
// §4.2 of the paper: SGD momentum 0.9, weight decay 1e-4, lr 0.1, batch 128, lr / 10 at 50% and 75% of the
// iterations (--schedule step: applied per step), 4-pixel-pad random crop + horizontal flip, normalisation, He
// init (the models' own), 28 px.
void apply_paper_recipe(TrainConfig& cfg);
// The project's best recipe so far (the same for every depth): SGD Nesterov momentum 0.9, lr 0.1, weight decay
// 5e-4, batch 128, cosine schedule with 1 epoch of warmup, label smoothing 0.1, crop + flip, normalisation,
// EMA 0.999 for evaluation, no weight decay on BN and biases; random erasing p 0.5 at full scale only.
void apply_best_recipe(TrainConfig& cfg, Scale scale);  // erasing at full scale only (experiments.cpp)

// `train_fmnist MODEL --flag value ...` with every field that differs from TrainConfig's defaults (out and data
// included when set): the command that trains the same run alone.
std::string train_command(const TrainConfig& cfg);

// ---- running ----
struct RunnerOptions {
  std::string out = "reproduction";
  Scale scale = Scale::quick;
  std::vector<std::string> only;  // run names ("plain56") or "experiment/run"; empty: all runs
  std::string device = "auto", conv = "native", data = kDefaultDataDir;
  int64_t threads = 0;
  bool tf32 = false;
  std::string precision = "fp32";   // fp32 | tf32 | bf16, as train_fmnist's --precision
  std::string cuda_graphs = "off";  // off | on, as train_fmnist's --cuda-graphs
  std::string layout = "nchw";      // nchw | nhwc | auto, as train_fmnist's --layout
  double time_limit_seconds = 0;    // stop (checkpointed, resumable) once this much time has passed; 0: no limit
  // Smoke tests: override every run's epochs and training / test subsets (0 = all images); -1 keeps the
  // definition's. The report marks such runs as differing from the definition.
  int64_t epochs = -1, limit_train = -1, limit_test = -1;
  std::string commit = "unknown";  // the build's git commit, recorded per run
  std::string command;             // the reproduce command line, recorded per run
  FILE* log = stdout;              // what the runner says; the trainer's epoch lines go to hooks.log
};

enum class RunOutcome { finished, skipped, interrupted, diverged, time_limit };

struct RunnerResult {
  std::vector<std::pair<std::string, RunOutcome>> runs;  // "experiment-scale/run" in the order handled
  bool stopped = false;                                  // interrupted, diverged or out of time before the end
  int exit_code = 0;  // 0 all done or skipped, 3 a run diverged (the others still ran), 130/143 signal, 75 time
};

// The definition with opt's smoke-test overrides (epochs, limits) applied.
TrainConfig definition_with_overrides(const RunSpec& spec, const RunnerOptions& opt);
// What the run trains with: that plus its folder and opt's device, conv, tf32, threads and data; validated
// (throws naming the run, e.g. a warmup as long as --epochs).
TrainConfig run_config(const std::string& experiment, const RunSpec& spec, const RunnerOptions& opt);

// Runs (or skips, or resumes) every run of `runs` into opt.out/<experiment>-<scale>/<run>/. A finished run (its
// run.json says so, or its last checkpoint holds all its epochs) is skipped; a run with a last.safetensors is
// resumed from it after checking that its configuration is this definition's; otherwise it starts afresh. A
// diverged run is recorded and skipped by later invocations (delete its folder to retry). Ctrl-C / SIGTERM and
// the time limit stop the current run at its next step with a checkpoint and return. Throws for a run folder
// made with another configuration.
RunnerResult run_experiment(const std::string& experiment, const std::vector<RunSpec>& runs, const RunnerOptions& opt,
                            const FashionMnist& data, TrainHooks hooks);

// The runs of `experiment` at opt.scale that opt.only selects (all when empty); throws for a name in opt.only
// that is no run of any of `experiments`.
std::vector<RunSpec> select_runs(const std::string& experiment, const std::vector<std::string>& experiments,
                                 const RunnerOptions& opt);

// ---- report ----
// Figures hook: given a degradation folder (e.g. DIR/degradation-quick) and its runs present, draws the Fig. 6
// style figure (plain nets in one panel, residual in the other, same axes; training error thin, test error bold,
// against iterations) and returns the image files written, relative to that folder. The app passes one drawn
// with app::runs_figure (apps/reproduce.cpp); without one the report says that no figure was drawn.
struct FigureRun {
  std::string name, family, dir;  // dir: the run folder
  int64_t steps_per_epoch = 0;    // epochs -> iterations
};
using FigureWriter =
    std::function<std::vector<std::string>(const std::string& experiment_dir, const std::vector<FigureRun>& runs)>;

// Markdown: for every experiment and scale with a folder under `dir`, its table beside the paper's numbers,
// with scale, epochs, device, commit and command for every number, the runs still missing named, and the
// degradation verdict. Experiments with no folder are listed as not run. Figure links are relative to the report's
// folder: `link_base` is the path from there to `dir` ("" when the report sits in `dir`).
std::string build_report(const std::string& dir, const FigureWriter& figures = nullptr,
                         const std::string& link_base = "");
// Writes build_report(dir) to `path` (default dir/report.md; e.g. docs/reproduction.md, whose figure links then
// start with the path from docs/ to dir); returns the path.
std::string write_report(const std::string& dir, const std::string& path = "", const FigureWriter& figures = nullptr);

// Paper numbers beside ours (He et al. 2016, CIFAR-10 test error in %, Table 6); NaN where not tabulated.
double paper_cifar_test_error(const std::string& family, int depth);

// Shared by the runner (experiments.cpp) and the report (experiments_report.cpp).
std::string utc_now();  // e.g. 2026-12-02T03:04:33Z
// The JSON in `path`, or null when there is no such file; a file that is not valid JSON is an error naming it.
nlohmann::json read_json_file(const std::string& path);

}  // namespace app
