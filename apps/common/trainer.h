// The training loop behind train_fmnist: per-step SGD with an lr schedule, device-side metrics read only when
// printed, evaluation per epoch, metrics files, curves, atomic last/best checkpoints, exact resume, Ctrl-C and
// divergence handling. Library code: it throws on bad input and reports how a run ended; the app maps that to
// an exit code.
#pragma once
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "apps/common/config.h"
#include "apps/common/data.h"
#include "apps/common/fmnist.h"
#include "apps/common/metrics.h"
#include "engine/nn/module.h"
#include "engine/random.h"

namespace app {

struct EvalResult {
  double loss = 0, accuracy = 0;
  std::vector<double> class_correct, class_total;
  int64_t count = 0;
};

// Accuracy and mean loss of `model` on `data` (eval mode, no autograd; the module's mode is restored).
EvalResult evaluate(engine::nn::Module& model, const DeviceDataset& data, const Preprocess& pp, int64_t batch_size);

// Learning rate for step `step` of 0-based `epoch`: linear warmup over --warmup-epochs, then the schedule.
double learning_rate(const TrainConfig& cfg, int64_t epoch, int64_t step, int64_t steps_per_epoch);

// Xavier-uniform (Glorot) for every convolution and linear weight (4-d and 2-d "weight" parameters), as d2l's
// init_weights: U(-a, a), a = sqrt(6 / (fan_in + fan_out)), fan = channels * kernel area.
void xavier_uniform_init(engine::nn::Module& model, engine::Generator& gen);

Preprocess preprocess_of(const TrainConfig& cfg);

// Applies --threads, --conv and --tf32 and returns the --device choice.
engine::Device setup_runtime(const TrainConfig& cfg);

// Ctrl-C: the handler only sets a flag; the loop finishes its batch, saves last.safetensors and returns.
void install_interrupt_handler();
void request_interrupt();
void clear_interrupt();
bool interrupt_requested();

struct TrainHooks {
  // After every optimizer step (0-based epoch and step); tests inject interruptions and faults here.
  std::function<void(int64_t epoch, int64_t step, engine::nn::Module& model)> after_step;
  bool progress = true;  // the progress bar on stderr
  FILE* log = stdout;    // epoch lines and the summary; nullptr for silence
  bool plots = true;     // curves.png / curves.svg after every epoch
};

enum class TrainStatus { finished, early_stopped, interrupted, diverged };

struct TrainResult {
  TrainStatus status = TrainStatus::finished;
  std::string message;  // how it ended, for the user
  std::vector<EpochRecord> history;
  EvalResult final_test;  // the last test evaluation
  std::string out_dir;
  int exit_code() const { return status == TrainStatus::diverged ? 3 : status == TrainStatus::interrupted ? 130 : 0; }
};

// Runs training. `model` was created (and seeded) by the caller, on the CPU; it is moved to the device here.
// cfg.out must be set; cfg.resume, when set, names a checkpoint of this model written by train().
TrainResult train(const TrainConfig& cfg, std::shared_ptr<engine::nn::Module> model, const FashionMnist& data,
                  const TrainHooks& hooks = {});

// runs/<model>-<YYYYmmdd-HHMMSS>
std::string default_out_dir(const std::string& model);

// Writes curves.png and curves.svg for one run (train loss, train acc, val/test acc against epoch).
void plot_run_curves(const std::string& dir, const std::string& title, const std::vector<EpochRecord>& history);

// "  T-shirt/top   0.862  (862/1000)" lines.
std::string per_class_table(const EvalResult& r);

}  // namespace app
