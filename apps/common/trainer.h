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
#include "engine/optim/sgd.h"
#include "engine/random.h"

namespace app {

struct EvalResult {
  double loss = 0, accuracy = 0;
  std::vector<double> class_correct, class_total;
  int64_t count = 0;
};

// Accuracy and mean loss of `model` on `data` (eval mode, no autograd; the module's mode is restored).
// activations: the dtype the model runs in (bf16 under --precision bf16: activation_dtype in config.h).
EvalResult evaluate(engine::nn::Module& model, const DeviceDataset& data, const Preprocess& pp, int64_t batch_size,
                    engine::DType activations = engine::DType::f32);

// Learning rate for step `step` of 0-based `epoch`: linear warmup over --warmup-epochs, then the schedule.
double learning_rate(const TrainConfig& cfg, int64_t epoch, int64_t step, int64_t steps_per_epoch);

// Xavier-uniform (Glorot) for every convolution and linear weight (4-d and 2-d "weight" parameters), as d2l's
// init_weights: U(-a, a), a = sqrt(6 / (fan_in + fan_out)), fan = channels * kernel area.
void xavier_uniform_init(engine::nn::Module& model, engine::Generator& gen);

Preprocess preprocess_of(const TrainConfig& cfg);

// Applies --threads, --conv and --tf32 and returns the --device choice.
engine::Device setup_runtime(const TrainConfig& cfg);

// Ctrl-C (SIGINT) and SIGTERM (what `timeout`, schedulers and containers send): the handler only records the
// signal; the loop finishes its batch, saves last.safetensors and returns. A second signal ends the process.
void install_interrupt_handler();
void request_interrupt(int signal_number = 2 /* SIGINT */);
void clear_interrupt();
bool interrupt_requested();
int interrupt_signal();  // the signal recorded, 0 if none

// A run has diverged when the loss of a training batch, or the mean validation or test loss, is not finite or
// exceeds kDivergenceFactor * ln(classes). ln(classes) is the loss of a uniform guess, where a fresh network
// starts; a network that averages 100 times that assigns the true class a probability below classes^-100, i.e.
// its logits are off by hundreds: no run recovers from that, while ordinary early spikes (a few times ln C)
// stay far below it. 230 for Fashion-MNIST's 10 classes.
constexpr double kDivergenceFactor = 100;
double divergence_bound(int64_t classes);

// The name of the first tensor that holds a NaN or Inf among the model's parameters and buffers (BN running
// statistics) and the optimizer's momentum buffers (as named in a checkpoint), or "" when all are finite.
// Only such a state may be written as a checkpoint. Copies every tensor to the host.
std::string first_nonfinite_tensor(const engine::nn::Module& model, const engine::optim::SGD* opt);

// Optimizer steps per epoch for n training examples: full batches plus the final incomplete one, except that a
// final batch of a single example is always dropped (batch norm cannot normalise one value per channel) and,
// with --drop-last, every incomplete final batch. Throws when that leaves no step.
int64_t steps_per_epoch(int64_t n, int64_t batch_size, bool drop_last);

// The number of training examples per epoch that `cfg` takes from `data` (--limit-train, minus --val-split).
int64_t training_examples(const TrainConfig& cfg, const FashionMnist& data);

// Checks that would otherwise fail only once training has begun, so that the app reports them as usage or data
// errors (exit 2) before it starts: the device and convolution engine exist in this build and machine, --out is
// not a file, and on --resume the whole checkpoint (every tensor loads into `model` with its momentum, every
// value finite, the metadata in range and consistent with this configuration and data). train() makes the same
// checks. Throws EngineError naming the file and the key or flag.
void check_before_training(const TrainConfig& cfg, const FashionMnist& data, engine::nn::Module& model);

// --layout auto: times `fwd_bwd` (the forward, loss and backward of one training batch, no optimizer step; it
// returns the loss) in NCHW and in NHWC and leaves `model` in the faster. Each layout is warmed up once first
// (the allocator, `--conv fastest`'s timing), then timed `repeats` times, the layouts interleaved so that a drift
// in the machine's speed meets both (in bf16 every call then re-casts the conv weights, whose one bf16 copy is in
// one layout's order: both pay it); the medians decide. The model's buffers (batch norm's running statistics) are
// restored and its gradients dropped, so the run goes on exactly as a run that named the chosen layout. Each timed
// call ends with a host sync (the loss read back), so CUDA is timed whole. `now_ms` reads the clock in
// milliseconds (empty: std::chrono::steady_clock); tests pass their own so that a loaded machine cannot move
// the decision.
struct LayoutTiming {
  kernels::Layout chosen = kernels::Layout::nchw;
  double nchw_ms = 0, nhwc_ms = 0;  // median per call
  int repeats = 0;
};
LayoutTiming choose_layout(engine::nn::Module& model, const std::function<engine::Tensor()>& fwd_bwd, int repeats = 3,
                           const std::function<double()>& now_ms = {});

// Removes files named <name>.tmp-<pid> in `dir` (what an atomic write leaves when its process is killed) whose
// process no longer runs. Returns the names removed.
std::vector<std::string> remove_orphan_temp_files(const std::string& dir);

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
  // Printed as they happened: an evaluation loss above the divergence bound while training is fine.
  std::vector<std::string> notices;
  std::vector<EpochRecord> history;
  EvalResult final_test;  // the last test evaluation
  std::string out_dir;
  int signal = 0;  // interrupted: the signal that asked for it
  // 0 finished, 3 diverged, 128 + signal when interrupted (130 Ctrl-C, 143 SIGTERM), as shells report.
  int exit_code() const {
    return status == TrainStatus::diverged ? 3 : status == TrainStatus::interrupted ? 128 + signal : 0;
  }
};

// Runs training. `model` was created (and seeded) by the caller, on the CPU; it is moved to the device here.
// cfg.out must be set; cfg.resume, when set, names a checkpoint of this model written by train().
TrainResult train(const TrainConfig& cfg, std::shared_ptr<engine::nn::Module> model, const FashionMnist& data,
                  const TrainHooks& hooks = {});

// runs/<model>-<YYYYmmdd-HHMMSS>
std::string default_out_dir(const std::string& model);

// "  T-shirt/top   0.862  (862/1000)" lines.
std::string per_class_table(const EvalResult& r);

}  // namespace app
