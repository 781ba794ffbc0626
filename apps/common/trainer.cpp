#include "apps/common/trainer.h"

#include <cblas.h>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <omp.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <ctime>
#include <filesystem>
#include <sstream>

#include "apps/common/files.h"
#include "apps/common/plot.h"
#include "apps/common/progress.h"
#include "apps/common/random_erasing.h"
#include "apps/common/step_log.h"
#include "engine/autograd.h"
#include "engine/checkpoint.h"
#include "engine/device.h"
#include "engine/error.h"
#include "engine/json_strict.h"
#include "engine/nn/layers.h"
#include "engine/ops.h"
#include "engine/optim/ema.h"
#include "engine/optim/param_groups.h"
#include "engine/optim/sgd.h"
#include "engine/step_graph.h"

namespace app {

using engine::cat;
using engine::Tensor;
namespace fs = std::filesystem;

// ---------------- interrupt ----------------
namespace {
volatile std::sig_atomic_t g_interrupt = 0;  // the signal number
extern "C" void on_signal(int sig) {
  g_interrupt = sig;
  std::signal(sig, SIG_DFL);  // a second Ctrl-C or SIGTERM ends the process at once
}
}  // namespace

void install_interrupt_handler() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
}
void request_interrupt(int signal_number) { g_interrupt = signal_number; }
void clear_interrupt() { g_interrupt = 0; }
bool interrupt_requested() { return g_interrupt != 0; }
int interrupt_signal() { return g_interrupt; }

// ---------------- runtime ----------------
namespace {
// --device and --conv checked against this build and machine, without side effects. `quiet`: "auto" without the
// notice resolve_device() prints when it falls back to the CPU (setup_runtime prints it once).
engine::Device check_runtime(const TrainConfig& cfg, bool quiet) {
  const engine::Device device = quiet && cfg.device == "auto"
                                    ? (engine::cuda_available() ? engine::Device::cuda(0) : engine::Device::cpu())
                                    : engine::resolve_device(cfg.device);
  const engine::ConvEngine conv = engine::parse_conv_engine(cfg.conv);
  ENGINE_CHECK(conv == engine::ConvEngine::native || engine::cudnn_compiled(), "--conv ", cfg.conv,
               " needs cuDNN, but this engine was built without it (rebuild with -DENGINE_CUDA=ON -DENGINE_CUDNN=ON, "
               "or use --conv native)");
  ENGINE_CHECK(conv == engine::ConvEngine::native || device.is_cuda(), "--conv ", cfg.conv,
               " needs a CUDA device, but training runs on the CPU");
  return device;
}

void check_out_dir(const std::string& out) {
  ENGINE_CHECK(!fs::exists(out) || fs::is_directory(out), "--out ", out,
               " is an existing file, not a folder; name a new or existing folder");
}
}  // namespace

engine::Device setup_runtime(const TrainConfig& cfg) {
  if (cfg.threads > 0) {
    omp_set_num_threads(static_cast<int>(cfg.threads));
    openblas_set_num_threads(static_cast<int>(cfg.threads));
  }
  const engine::Device device = check_runtime(cfg, false);
  engine::set_conv_engine(engine::parse_conv_engine(cfg.conv));
  if (device.is_cuda()) engine::set_allow_tf32(math_mode(cfg) == "tf32");
  return device;
}

// ---------------- training ----------------
namespace {

// Where a run stands; saved in every checkpoint's metadata so --resume continues exactly.
struct RunState {
  int64_t epoch = 0;  // epochs completed
  int64_t step = 0;   // steps completed in epoch `epoch` (mid-epoch checkpoints after Ctrl-C)
  double partial_loss_sum = 0, partial_correct = 0, partial_count = 0, partial_seconds = 0;
  WindowStart window;  // mid-epoch: where the unfinished steps.csv window began
  int64_t global_step = 0;
  double best_metric = -1;
  int64_t best_epoch = 0, epochs_since_best = 0;
  double elapsed_seconds = 0;
  int64_t train_examples = 0;
  std::vector<EpochRecord> history;
};

engine::Metadata state_metadata(const TrainConfig& cfg, const RunState& s, const std::string& monitor) {
  engine::Metadata m = config_to_metadata(cfg);
  m["format"] = "train_fmnist checkpoint v1";
  m["model"] = cfg.model;
  m["epoch"] = std::to_string(s.epoch);
  m["step"] = std::to_string(s.step);
  m["partial_loss_sum"] = exact(s.partial_loss_sum);
  m["partial_correct"] = exact(s.partial_correct);
  m["partial_count"] = exact(s.partial_count);
  m["partial_seconds"] = exact(s.partial_seconds);
  m["window_loss_sum"] = exact(s.window.loss_sum);
  m["window_correct"] = exact(s.window.correct);
  m["window_count"] = exact(s.window.count);
  m["window_step"] = std::to_string(s.window.step);
  m["global_step"] = std::to_string(s.global_step);
  m["best_metric"] = exact(s.best_metric);
  m["best_epoch"] = std::to_string(s.best_epoch);
  m["epochs_since_best"] = std::to_string(s.epochs_since_best);
  m["monitor"] = monitor;
  m["elapsed_seconds"] = exact(s.elapsed_seconds);
  m["train_examples"] = std::to_string(s.train_examples);
  m["rng"] = cat("stateless: the order and augmentation of epoch e come from Rng(seed=", cfg.seed,
                 ", stream=", kStreamEpochPlan, ", index=e) (apps/common/data.h); weights from the seed at start");
  std::string jsonl;
  for (const auto& r : s.history) jsonl += to_json_line(r) + "\n";
  m["history"] = jsonl;
  return m;
}

// The run state saved in a checkpoint, every value checked against the range a run of `cfg` on n training
// examples can produce, so an edited or corrupt file is refused naming the file and the key instead of training
// from a fake position.
RunState state_from_metadata(const engine::Metadata& m, const std::string& path, const TrainConfig& cfg, int64_t n) {
  auto get = [&](const char* key) -> const std::string& {
    auto it = m.find(key);
    ENGINE_CHECK(it != m.end(), path, ": metadata lacks '", key, "' (not a train_fmnist checkpoint?)");
    return it->second;
  };
  auto out_of_range = [&](const char* key, const std::string& range) {
    engine::fail(cat(path, ": metadata '", key, "' = '", get(key), "' is out of range: ", range,
                     " (a corrupt or edited checkpoint?)"));
  };
  auto i64 = [&](const char* key, int64_t lo, int64_t hi) {
    int64_t v = 0;
    try {
      size_t used = 0;
      v = static_cast<int64_t>(std::stoll(get(key), &used));
      ENGINE_CHECK(used == get(key).size(), "trailing characters");
    } catch (const std::exception&) {
      engine::fail(cat(path, ": metadata '", key, "' = '", get(key), "' is not an integer"));
    }
    if (v < lo || v > hi) out_of_range(key, cat("expected ", lo, " to ", hi));
    return v;
  };
  auto f64 = [&](const char* key, double lo, double hi) {
    double v = 0;
    try {
      v = std::stod(get(key));
    } catch (const std::logic_error&) {
      engine::fail(cat(path, ": metadata '", key, "' = '", get(key), "' is not a number"));
    }
    if (!(v >= lo && v <= hi)) out_of_range(key, cat("expected ", lo, " to ", hi));
    return v;
  };
  ENGINE_CHECK(get("format") == "train_fmnist checkpoint v1", path, ": metadata 'format' = '", get("format"),
               "' is not 'train_fmnist checkpoint v1'");
  RunState s;
  s.train_examples = i64("train_examples", 1, INT64_MAX);
  ENGINE_CHECK(s.train_examples == n, "--resume: the checkpoint was trained on ", s.train_examples,
               " examples per epoch but this run has ", n, " (different --data, --limit-train or --val-split?)");
  const int64_t steps = steps_per_epoch(n, cfg.batch_size, cfg.drop_last);
  const int64_t saved_epochs = i64("config.epochs", 1, INT64_MAX);
  s.epoch = i64("epoch", 0, saved_epochs);
  s.step = i64("step", 0, s.epoch < saved_epochs ? steps : 0);
  s.global_step = i64("global_step", 0, INT64_MAX);
  if (s.global_step != s.epoch * steps + s.step)
    out_of_range("global_step", cat("epoch ", s.epoch, " and step ", s.step, " at ", steps, " steps per epoch make ",
                                    s.epoch * steps + s.step));
  // The running sums of a mid-epoch checkpoint: every example seen so far once, each batch loss within the bound
  // (a run with a worse batch stops as diverged and saves nothing).
  const double seen = static_cast<double>(std::min(s.step * cfg.batch_size, n));
  s.partial_count = f64("partial_count", seen, seen);
  s.partial_correct = f64("partial_correct", 0, seen);
  s.partial_loss_sum = f64("partial_loss_sum", 0, seen * divergence_bound(kNumClasses));
  const double kMaxSeconds = 1e10;  // three centuries: anything more is corruption
  s.partial_seconds = f64("partial_seconds", 0, kMaxSeconds);
  // Checkpoints from before steps.csv lack the window: it then starts where the run resumes.
  s.window = {s.partial_loss_sum, s.partial_correct, s.partial_count, s.step};
  if (m.count("window_step")) {
    s.window.step = i64("window_step", 0, s.step);
    s.window.count = f64("window_count", 0, s.partial_count);
    s.window.correct = f64("window_correct", 0, s.partial_correct);
    s.window.loss_sum = f64("window_loss_sum", 0, s.partial_loss_sum);
  }
  s.elapsed_seconds = f64("elapsed_seconds", 0, kMaxSeconds);
  if (get("best_metric") != "-1") s.best_metric = f64("best_metric", 0, 1);
  s.best_epoch = i64("best_epoch", 0, s.epoch);
  s.epochs_since_best = i64("epochs_since_best", 0, s.epoch);
  std::istringstream lines(get("history"));
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    try {
      s.history.push_back(record_from_json(engine::parse_json(line)));
    } catch (const engine::EngineError& e) {
      engine::fail(cat(path, ": metadata 'history' line ", s.history.size() + 1, ": ", e.what()));
    }
    ENGINE_CHECK(s.history.back().epoch == static_cast<int64_t>(s.history.size()), path, ": metadata 'history' line ",
                 s.history.size(), " records epoch ", s.history.back().epoch, " (a corrupt or edited checkpoint?)");
  }
  ENGINE_CHECK(static_cast<int64_t>(s.history.size()) == s.epoch, path, ": metadata 'history' holds ", s.history.size(),
               " epochs but 'epoch' = ", s.epoch, " (a corrupt or edited checkpoint?)");
  return s;
}

// Loads a checkpoint to resume from into `model` and `opt` and returns its run state; refuses one holding a
// non-finite value (it would diverge again at once).
RunState load_for_resume(const TrainConfig& cfg, int64_t n, engine::nn::Module& model, engine::optim::SGD& opt,
                         engine::optim::ModelEma* ema) {
  engine::Metadata meta = engine::load_checkpoint(cfg.resume, model, &opt);
  ENGINE_CHECK(!ema || ema->load(cfg.resume), cfg.resume, ": --ema ", cfg.ema,
               " but the checkpoint holds no weight averages (ema.*); was it edited?");
  const std::string bad = first_nonfinite_tensor(model, &opt);
  ENGINE_CHECK(bad.empty(), cfg.resume, ": tensor '", bad,
               "' holds a non-finite value; resume from an earlier checkpoint (train_fmnist writes only finite ones)");
  return state_from_metadata(meta, cfg.resume, cfg, n);
}

engine::optim::SgdOptions sgd_options(const TrainConfig& cfg) {
  return {cfg.lr, cfg.momentum, cfg.weight_decay, cfg.nesterov};
}

// --no-wd-bn: BN parameters and biases in a group of their own without weight decay.
engine::optim::SGD make_optimizer(const TrainConfig& cfg, const engine::nn::Module& model) {
  return engine::optim::SGD(engine::optim::weight_decay_groups(model, cfg.weight_decay, cfg.no_wd_bn),
                            sgd_options(cfg));
}

std::unique_ptr<engine::optim::ModelEma> make_ema(const TrainConfig& cfg, const engine::nn::Module& model) {
  return cfg.ema > 0 ? std::make_unique<engine::optim::ModelEma>(model, cfg.ema) : nullptr;
}

std::string fixed(const char* label, double v, int digits) { return fmt::format("{}{:.{}f}", label, v, digits); }

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// "non-finite loss (nan)" or "loss 1e+17 above the divergence bound 230.3 (100 x ln 10)".
std::string bad_loss(const char* what, double loss) {
  if (!std::isfinite(loss)) return cat("non-finite ", what, " (", loss, ")");
  return cat(what, " ", loss, " above the divergence bound ", fixed("", divergence_bound(kNumClasses), 1), " (",
             kDivergenceFactor, " x ln ", kNumClasses, ")");
}

bool loss_ok(double loss) { return std::isfinite(loss) && loss <= divergence_bound(kNumClasses); }

}  // namespace

void check_before_training(const TrainConfig& cfg, const FashionMnist& data, engine::nn::Module& model) {
  validate(cfg);
  check_runtime(cfg, true);
  check_out_dir(cfg.out);
  const int64_t n = training_examples(cfg, data);
  steps_per_epoch(n, cfg.batch_size, cfg.drop_last);
  if (!cfg.resume.empty()) {
    engine::optim::SGD opt = make_optimizer(cfg, model);
    load_for_resume(cfg, n, model, opt, make_ema(cfg, model).get());
  }
}

// `cfg` by value: --layout auto is replaced by the layout chosen, which config.json and the checkpoints record.
static TrainResult train_run(TrainConfig cfg, std::shared_ptr<engine::nn::Module> model, const FashionMnist& data,
                             const TrainHooks& hooks) {
  ENGINE_CHECK(model, "train: no model");
  ENGINE_CHECK(!cfg.out.empty(), "train: no output folder (--out)");
  validate(cfg);
  check_out_dir(cfg.out);
  FILE* log = hooks.log;
  auto session_start = std::chrono::steady_clock::now();
  const engine::Device device = setup_runtime(cfg);
  const Preprocess pp = preprocess_of(cfg);

  // ---- data: limit, split, upload once ----
  LabeledImages all_train = data.train.head(cfg.limit_train), train_set, val_set;
  if (cfg.val_split > 0) {
    split_validation(all_train, cfg.val_split, static_cast<uint64_t>(cfg.seed), &train_set, &val_set);
  } else {
    train_set = std::move(all_train);
  }
  const LabeledImages test_set = data.test.head(cfg.limit_test);
  DeviceDataset train_data(train_set, device), test_data(test_set, device);
  std::unique_ptr<DeviceDataset> val_data;
  if (cfg.val_split > 0) val_data = std::make_unique<DeviceDataset>(val_set, device);
  BatchBuilder builder(train_data, batch_params(pp, train_data.rows(), train_data.cols(), true));
  const int64_t n = train_data.size(), bs = cfg.batch_size, steps = steps_per_epoch(n, bs, cfg.drop_last);
  const engine::DType act = activation_dtype(cfg);  // bf16 under --precision bf16 (mixed precision)
  const std::string monitor = val_data ? "val_acc" : "test_acc";

  // ---- model, optimizer, state ----
  if (cfg.resume.empty() && cfg.init == "xavier") xavier_uniform_init(*model, engine::default_generator());
  model->to(device);
  model->train();
  if (cfg.layout != "auto") model->set_layout(engine::parse_layout(cfg.layout));
  engine::optim::SGD opt = make_optimizer(cfg, *model);
  std::unique_ptr<engine::optim::ModelEma> ema = make_ema(cfg, *model);  // evaluation uses it when on
  RunState st;
  st.train_examples = n;
  // The newest checkpoint known to be good (all finite): what a diverged run points the user to.
  std::string good_path, good_when;
  auto when = [&](const RunState& s) {
    return s.step == 0 ? cat("after epoch ", s.epoch) : cat("epoch ", s.epoch + 1, " step ", s.step, "/", steps);
  };
  if (!cfg.resume.empty()) {
    st = load_for_resume(cfg, n, *model, opt, ema.get());
    good_path = cfg.resume;
    good_when = when(st);
  }
  if (cfg.layout == "auto") {
    // Timed on the first batch of the epoch the run starts in (the loop's augmentation plan; no random erasing).
    builder.set_plan(
        make_epoch_plan(n, static_cast<uint64_t>(cfg.seed), st.epoch, true, cfg.augment, builder.params().pad));
    const Batch b = builder.make(0, std::min(bs, n));
    const LayoutTiming t = choose_layout(*model, [&] {
      Tensor loss = engine::cross_entropy(engine::nn::forward_logits(*model, b.x, act), b.y, cfg.label_smoothing);
      loss.backward();
      return loss.detach();
    });
    cfg.layout = engine::layout_name(t.chosen);
    if (log)
      fmt::print(log,
                 "layout auto: a forward and backward of {} examples took {:.1f} ms in nchw, {:.1f} ms in nhwc "
                 "(median of {}); training in {}\n",
                 b.x.size(0), t.nchw_ms, t.nhwc_ms, t.repeats, cfg.layout);
  }
  fs::create_directories(cfg.out);
  std::vector<std::string> orphans = remove_orphan_temp_files(cfg.out);
  if (log && !orphans.empty())
    fmt::print(log, "removed {} temporary file(s) left in {} by a killed run: {}\n", orphans.size(), cfg.out,
               join(orphans));
  write_file_atomic(cfg.out + "/config.json", config_to_json(cfg));
  const std::string last_path = cfg.out + "/last.safetensors", best_path = cfg.out + "/best.safetensors";
  StepLog step_log(cfg.out, steps, log_interval(cfg.log_every, steps), cfg.resume, st.global_step);
  if (log && !step_log.note().empty()) std::fprintf(log, "note: %s\n", step_log.note().c_str());

  TrainResult result;
  result.out_dir = cfg.out;
  result.history = st.history;
  auto diverged = [&](const std::string& what) {
    result.status = TrainStatus::diverged;
    result.history = st.history;
    result.message = cat("training diverged: ", what, ". ",
                         good_path.empty() ? std::string("No checkpoint had been written yet.")
                                           : cat("The last good checkpoint, ", good_path, " (", good_when,
                                                 "), is kept; every tensor in it is finite."),
                         " Try a smaller --lr, --warmup-epochs or --normalize.");
    return result;
  };
  // Writes the checkpoints for the state `st` unless a tensor is not finite; returns what is wrong or "".
  auto save_if_finite = [&](bool best, const std::string& when_text) -> std::string {
    const std::string bad = first_nonfinite_tensor(*model, &opt);
    if (!bad.empty()) return cat("tensor '", bad, "' holds a non-finite value ", when_text);
    const engine::Metadata meta = state_metadata(cfg, st, monitor);
    const engine::nn::NamedTensors averages = ema ? ema->checkpoint_tensors() : engine::nn::NamedTensors{};
    if (best) engine::save_checkpoint(best_path, *model, &opt, meta, st.global_step, averages);
    engine::save_checkpoint(last_path, *model, &opt, meta, st.global_step, averages);
    good_path = last_path;
    good_when = when(st);
    return "";
  };
  if (log) {
    fmt::print(
        log,
        "{} {}: {} parameters on {}; {} training examples{}, {} test; {}x{} px, batch {}, {} steps/epoch, {}{}{}\n",
        cfg.resume.empty() ? "training" : "resuming", cfg.model, model->num_parameters(), device.str(), n,
        val_data ? fmt::format(" (+{} validation)", val_data->size()) : "", test_data.size(), cfg.resize, cfg.resize,
        bs, steps, math_mode(cfg) == "bf16" ? "bf16 mixed precision" : math_mode(cfg),
        cfg.layout == "nhwc" ? ", channels last" : "",
        cfg.resume.empty() ? "" : fmt::format(" from epoch {} step {}", st.epoch + 1, st.step + 1));
    std::fflush(log);
  }

  MetricsAccumulator acc(kNumClasses, device, divergence_bound(kNumClasses));
  // The step: eager, or under --cuda-graphs a replay of its capture (engine/step_graph.h). A captured step reads
  // its batch from `staged`, one pair of tensors for the whole run, into which each full batch is copied.
  engine::StepGraph graphs(cfg.cuda_graphs == "on", device);
  Batch staged;
  const Batch* in = nullptr;
  const engine::StepGraph::Step train_step = [&] {
    Tensor logits = engine::nn::forward_logits(*model, in->x, act);
    Tensor loss = engine::cross_entropy(logits, in->y, cfg.label_smoothing);
    opt.zero_grad();
    loss.backward();
    opt.step();
    if (ema) ema->update(*model);
    return std::vector<Tensor>{logits.detach(), loss.detach()};
  };
  auto print_notice = [&] {
    const std::string notice = graphs.take_notice();
    if (log && !notice.empty()) fmt::print(log, "note: {}\n", notice);
  };
  print_notice();
  bool ran_epoch = false;
  for (int64_t e = st.epoch; e < cfg.epochs; ++e) {
    const int64_t first_step = e == st.epoch ? st.step : 0;
    std::vector<kernels::SampleSpec> plan =
        make_epoch_plan(n, static_cast<uint64_t>(cfg.seed), e, true, cfg.augment, builder.params().pad);
    add_random_erasing(plan, RandomErasing{cfg.erase}, static_cast<uint64_t>(cfg.seed), e, pp.resize, pp.resize);
    builder.set_plan(plan);
    acc.reset();
    double carried_seconds = 0, carried_count = 0;
    if (first_step > 0) {
      acc.restore(st.partial_loss_sum, st.partial_correct, st.partial_count);
      carried_seconds = st.partial_seconds;
      carried_count = st.partial_count;
    }
    step_log.start_epoch(first_step > 0 ? st.window : WindowStart{});
    ProgressBar bar(cat("epoch ", e + 1, "/", cfg.epochs), steps, first_step);
    const auto epoch_start = std::chrono::steady_clock::now();
    double lr = learning_rate(cfg, e, std::max<int64_t>(0, first_step - 1), steps);  // of the last step run
    MetricsAccumulator::Totals totals;
    for (int64_t step = first_step; step < steps; ++step) {
      lr = learning_rate(cfg, e, step, steps);
      opt.set_lr(lr);
      Batch b = builder.make(step * bs, std::min(bs, n - step * bs));
      const bool full = b.x.size(0) == bs;  // an incomplete final batch runs eagerly
      in = &b;
      if (graphs.active() && full) {
        if (staged.x.defined()) {
          staged.x.copy_(b.x);
          staged.y.copy_(b.y);
        } else {
          staged = Batch{b.x.clone(), b.y.clone()};
        }
        in = &staged;
      }
      const std::vector<Tensor> out = graphs.run(train_step, full);
      print_notice();
      acc.add(out[0], in->y, out[1], step);
      ++st.global_step;
      if (hooks.after_step) hooks.after_step(e, step, *model);

      // Reading metrics is a host sync on CUDA: only for the bar, every 50 steps, at the end or on Ctrl-C. The
      // accumulator has recorded the first bad step on the device meanwhile.
      const bool draw = hooks.progress && bar.due(step + 1);
      const bool stop = interrupt_requested(), log_step = step_log.due(step);
      if (device.is_cpu() || draw || stop || log_step || (step + 1) % 50 == 0 || step + 1 == steps) {
        totals = acc.read();
        if (totals.first_bad_step >= 0) {
          bar.finish();
          return diverged(cat(bad_loss("loss", totals.first_bad_loss), " at epoch ", e + 1, "/", cfg.epochs, " step ",
                              totals.first_bad_step + 1, "/", steps, " (lr ", lr, ")"));
        }
        const double secs = seconds_since(epoch_start);
        if (log_step)
          step_log.record(e, step, st.global_step, lr, totals.loss_sum, totals.correct, totals.count,
                          st.elapsed_seconds + seconds_since(session_start));
        if (draw)
          bar.update(step + 1, totals.loss(), totals.accuracy(), secs > 0 ? (totals.count - carried_count) / secs : 0);
        if (stop) {
          bar.finish();
          const RunState before = st;
          st.epoch = e;
          st.step = step + 1;
          st.partial_loss_sum = totals.loss_sum;
          st.partial_correct = totals.correct;
          st.partial_count = totals.count;
          st.partial_seconds = carried_seconds + secs;
          st.window = step_log.window_start();
          st.elapsed_seconds += seconds_since(session_start);
          const std::string bad = save_if_finite(false, cat("at epoch ", e + 1, "/", cfg.epochs, " step ", step + 1,
                                                            "/", steps, " (the losses were finite)"));
          if (!bad.empty()) {
            st = before;
            return diverged(bad);
          }
          result.status = TrainStatus::interrupted;
          result.signal = interrupt_signal();
          result.history = st.history;
          result.message = cat("interrupted", result.signal == SIGTERM ? " by SIGTERM" : "", " at epoch ", e + 1, "/",
                               cfg.epochs, " step ", step + 1, "/", steps, "; saved ", last_path,
                               ". Continue with: train_fmnist --resume ", last_path);
          return result;
        }
      }
    }
    if (first_step >= steps) totals = acc.read();  // interrupted right after the last step: nothing left to run
    const double train_seconds = seconds_since(epoch_start);
    bar.finish();

    // ---- evaluate, check, record, save ----
    EpochRecord r;
    r.epoch = e + 1;
    r.train_loss = totals.loss();
    r.train_acc = totals.accuracy();
    r.val_loss = r.val_acc = NAN;
    {
      engine::optim::EmaScope averaged(ema.get(), *model);  // --ema: evaluate the averages
      if (val_data) {
        EvalResult v = evaluate(*model, *val_data, pp, bs, act);
        r.val_loss = v.loss;
        r.val_acc = v.accuracy;
      }
      result.final_test = evaluate(*model, test_data, pp, bs, act);
      r.test_loss = result.final_test.loss;
      r.test_acc = result.final_test.accuracy;
    }
    const std::string after = cat("after epoch ", e + 1, "/", cfg.epochs);
    // Evaluation stops a run only when its loss is not finite. A finite one above the bound is how eval-mode batch
    // norm answers while the running statistics lag fast-changing weights (deep plain nets in their first epochs,
    // docs/training.md): a notice, not a divergence; the training loss, checked every step, is the signal.
    if (val_data && !std::isfinite(r.val_loss))
      return diverged(cat(bad_loss("validation loss", r.val_loss), " ", after));
    if (!std::isfinite(r.test_loss)) return diverged(cat(bad_loss("test loss", r.test_loss), " ", after));
    for (const auto& [what, loss] :
         {std::pair<const char*, double>{"validation loss", r.val_loss}, {"test loss", r.test_loss}})
      if (std::isfinite(loss) && !loss_ok(loss)) {
        result.notices.push_back(
            cat(bad_loss(what, loss), " ", after, " while the training loss is ", fixed("", r.train_loss, 3),
                ": evaluation with the BN running statistics disagrees with training; training goes on"));
        if (log) fmt::print(log, "note: {}\n", result.notices.back());
      }
    r.lr = lr;
    r.examples_per_sec = train_seconds > 0 ? (totals.count - carried_count) / train_seconds : 0;
    r.epoch_seconds = carried_seconds + seconds_since(epoch_start);
    const RunState before = st;
    st.elapsed_seconds += seconds_since(session_start);
    r.elapsed_seconds = st.elapsed_seconds;
    st.history.push_back(r);

    st.epoch = e + 1;
    st.step = 0;
    st.partial_loss_sum = st.partial_correct = st.partial_count = st.partial_seconds = 0;
    st.window = {};
    const double metric = val_data ? r.val_acc : r.test_acc;
    const bool improved = metric > st.best_metric;
    if (improved) {
      st.best_metric = metric;
      st.best_epoch = e + 1;
      st.epochs_since_best = 0;
    } else {
      ++st.epochs_since_best;
    }
    const std::string bad = save_if_finite(improved, cat(after, " (the losses were finite)"));
    if (!bad.empty()) {
      st = before;
      return diverged(bad);
    }
    ran_epoch = true;
    write_metrics_files(cfg.out, st.history);
    if (hooks.plots) plot_run_curves(cfg.out, run_title(cfg), st.history, cfg.epochs);
    if (log) {
      fmt::print(log,
                 "epoch {}/{}  loss {:.3f}  train acc {:.3f}{}  test acc {:.3f}  {:.1f} examples/sec on {}  ({})\n",
                 e + 1, cfg.epochs, r.train_loss, r.train_acc, val_data ? fixed("  val acc ", r.val_acc, 3) : "",
                 r.test_acc, r.examples_per_sec, device.str(), ProgressBar::format_duration(r.epoch_seconds));
      std::fflush(log);
    }
    // Restart the session clock: elapsed_seconds now includes everything up to here.
    session_start = std::chrono::steady_clock::now();

    if (cfg.early_stop > 0 && st.epochs_since_best >= cfg.early_stop) {
      result.status = TrainStatus::early_stopped;
      result.message = cat("early stop: no better ", monitor, " for ", st.epochs_since_best, " epochs (best ",
                           fixed("", st.best_metric, 4), " at epoch ", st.best_epoch, ")");
      break;
    }
  }
  if (!ran_epoch) {
    engine::optim::EmaScope averaged(ema.get(), *model);
    result.final_test = evaluate(*model, test_data, pp, bs, act);
  }
  result.history = st.history;
  if (result.status == TrainStatus::finished)
    // The result is the last epoch's test accuracy; a best epoch is named only where it was chosen on a
    // validation split (choosing it on the test set would inflate the result).
    result.message =
        cat("finished ", cfg.epochs, " epochs; test_acc ",
            fixed("", st.history.empty() ? result.final_test.accuracy : st.history.back().test_acc, 4),
            " at the last epoch",
            val_data ? cat(" (best val_acc ", fixed("", st.best_metric, 4), " at epoch ", st.best_epoch, ")")
                     : std::string(),
            "; outputs in ", cfg.out);
  if (log) {
    fmt::print(log, "per-class test accuracy:\n{}", per_class_table(result.final_test));
    std::fflush(log);
  }
  return result;
}

// --detect-anomaly: the first NaN or Inf ends the run as a divergence, named where it appeared.
TrainResult train(const TrainConfig& cfg, std::shared_ptr<engine::nn::Module> model, const FashionMnist& data,
                  const TrainHooks& hooks) {
  engine::DetectAnomalyGuard anomaly_mode(cfg.detect_anomaly);
  try {
    return train_run(cfg, std::move(model), data, hooks);
  } catch (const engine::AnomalyError& e) {
    TrainResult r;
    r.status = TrainStatus::diverged;
    r.out_dir = cfg.out;
    r.message = cat("training diverged: ", e.what());
    return r;
  }
}

}  // namespace app
