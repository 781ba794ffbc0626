// The trainer's parts that are not the loop (apps/common/trainer.h): preprocessing from the configuration, steps
// per epoch, the learning-rate schedule, evaluation, initialisation, output folders and the per-class table.
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <iterator>

#include "apps/common/trainer.h"
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/nn/layers.h"
#include "engine/ops.h"
#include "engine/optim/sgd.h"

namespace app {

using engine::cat;
using engine::Tensor;
namespace fs = std::filesystem;

Preprocess preprocess_of(const TrainConfig& cfg) {
  Preprocess pp;
  pp.resize = static_cast<int>(cfg.resize);
  pp.normalize = cfg.normalize;
  pp.augment = cfg.augment;
  pp.erase_random = cfg.erase_fill == "random";
  return pp;
}

double divergence_bound(int64_t classes) { return kDivergenceFactor * std::log(static_cast<double>(classes)); }

std::string first_nonfinite_tensor(const engine::nn::Module& model, const engine::optim::SGD* opt) {
  auto finite = [](const Tensor& t) {
    for (double v : t.to_vector())
      if (!std::isfinite(v)) return false;
    return true;
  };
  const engine::nn::NamedTensors params = model.named_parameters();
  for (const auto& [name, t] : params)
    if (!finite(t)) return name;
  for (const auto& [name, t] : model.named_buffers())
    if (!finite(t)) return name;
  if (!opt) return "";
  // SGD exposes its momentum buffers only mutably; they are only read here.
  const auto& bufs = const_cast<engine::optim::SGD*>(opt)->momentum_buffers();
  for (size_t i = 0; i < bufs.size(); ++i) {
    if (!bufs[i].defined() || finite(bufs[i])) continue;
    for (const auto& [name, p] : params)
      if (p.same(opt->params()[i])) return engine::kMomentumPrefix + name;
    return cat(engine::kMomentumPrefix, "#", i);
  }
  return "";
}

int64_t steps_per_epoch(int64_t n, int64_t batch_size, bool drop_last) {
  ENGINE_CHECK(n > 0 && batch_size > 0, "steps_per_epoch: ", n, " examples in batches of ", batch_size);
  const int64_t rest = n % batch_size;
  const int64_t steps = n / batch_size + (rest >= 2 && !drop_last ? 1 : 0);
  ENGINE_CHECK(steps > 0, n == 1 ? std::string("a single training example makes no batch (batch norm needs two)")
                                 : cat("--drop-last: the ", n, " training examples do not fill one batch of ",
                                       batch_size, "; lower --batch-size"));
  return steps;
}

int64_t training_examples(const TrainConfig& cfg, const FashionMnist& data) {
  const int64_t all = cfg.limit_train > 0 ? std::min(cfg.limit_train, data.train.count) : data.train.count;
  return cfg.val_split > 0 ? all - validation_count(cfg.val_split, all) : all;
}

std::vector<std::string> remove_orphan_temp_files(const std::string& dir) {
  std::vector<std::string> removed;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const size_t at = name.rfind(".tmp-");
    if (at == std::string::npos || at == 0) continue;
    const std::string digits = name.substr(at + 5);
    if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(digits));
    // kill(pid, 0) probes without signalling: ESRCH means no such process; EPERM means it runs as another user.
    if (pid <= 0 || pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    if (fs::remove(entry.path(), ec)) removed.push_back(name);
  }
  return removed;
}

EvalResult evaluate(engine::nn::Module& model, const DeviceDataset& data, const Preprocess& pp, int64_t batch_size,
                    engine::DType activations) {
  ENGINE_CHECK(batch_size > 0, "evaluate: batch size must be positive");
  const bool was_training = model.is_training();
  model.eval();
  engine::NoGradGuard no_grad;
  BatchBuilder builder(data, batch_params(pp, data.rows(), data.cols(), false));
  builder.set_plan(make_eval_plan(data.size()));
  MetricsAccumulator acc(kNumClasses, data.device());
  int64_t step = 0;
  for (int64_t begin = 0; begin < data.size(); begin += batch_size, ++step) {
    Batch b = builder.make(begin, std::min(batch_size, data.size() - begin));
    Tensor logits = engine::nn::forward_logits(model, b.x, activations);
    acc.add(logits, b.y, engine::cross_entropy(logits, b.y), step);
  }
  model.train(was_training);
  MetricsAccumulator::Totals t = acc.read();
  EvalResult r;
  r.loss = t.loss();
  r.accuracy = t.accuracy();
  r.class_correct = t.class_correct;
  r.class_total = t.class_total;
  r.count = static_cast<int64_t>(t.count);
  return r;
}

double learning_rate(const TrainConfig& cfg, int64_t epoch, int64_t step, int64_t steps_per_epoch) {
  const double spe = static_cast<double>(std::max<int64_t>(1, steps_per_epoch));
  const double t = epoch + step / spe;  // epochs done before this step
  const double total = static_cast<double>(cfg.epochs), warm = cfg.warmup_epochs;
  if (warm > 0 && t < warm) return cfg.lr * std::min(1.0, (t + 1.0 / spe) / warm);
  if (cfg.schedule == "step") {
    // The paper divides by 10 at 32k and 48k of 64k iterations: at 50% and 75% of the run.
    int drops = (t >= 0.5 * total) + (t >= 0.75 * total);
    return cfg.lr * std::pow(0.1, drops);
  }
  if (cfg.schedule == "cosine") {
    const double progress = std::clamp((t - warm) / std::max(1e-12, total - warm), 0.0, 1.0);
    return cfg.lr * 0.5 * (1.0 + std::cos(M_PI * progress));
  }
  return cfg.lr;
}

void xavier_uniform_init(engine::nn::Module& model, engine::Generator& gen) {
  for (auto& [name, w] : model.named_parameters()) {
    const bool is_weight = name == "weight" || (name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0);
    if (!is_weight || (w.dim() != 2 && w.dim() != 4)) continue;
    const double receptive = w.dim() == 4 ? static_cast<double>(w.size(2) * w.size(3)) : 1.0;
    const double fan_in = w.size(1) * receptive, fan_out = w.size(0) * receptive;
    const double a = std::sqrt(6.0 / (fan_in + fan_out));
    Tensor t = w;
    engine::uniform_(t, -a, a, gen);
  }
}

LayoutTiming choose_layout(engine::nn::Module& model, const std::function<Tensor()>& fwd_bwd, int repeats,
                           const std::function<double()>& now_ms) {
  ENGINE_CHECK(repeats >= 1, "choose_layout: repeats must be at least 1, got ", repeats);
  const std::function<double()> now = now_ms ? now_ms : [] {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
  };
  std::vector<std::pair<Tensor, Tensor>> saved;  // (buffer, its value before)
  for (const auto& [name, t] : model.named_buffers()) saved.emplace_back(t, t.clone());
  using kernels::Layout;
  const Layout layouts[2] = {Layout::nchw, Layout::nhwc};
  auto call = [&](Layout l) {
    model.set_layout(l);
    model.zero_grad();
    const double t0 = now();
    fwd_bwd().item();  // a host sync: the whole call has run
    return now() - t0;
  };
  for (Layout l : layouts) call(l);
  std::vector<double> ms[2];
  for (int r = 0; r < repeats; ++r)
    for (int i = 0; i < 2; ++i) ms[i].push_back(call(layouts[i]));
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t k = v.size() / 2;
    return v.size() % 2 ? v[k] : 0.5 * (v[k - 1] + v[k]);
  };
  LayoutTiming t;
  t.nchw_ms = median(ms[0]);
  t.nhwc_ms = median(ms[1]);
  t.repeats = repeats;
  t.chosen = t.nhwc_ms < t.nchw_ms ? Layout::nhwc : Layout::nchw;
  for (auto& [buffer, before] : saved) buffer.copy_(before);
  model.zero_grad();
  model.set_layout(t.chosen);
  return t;
}

std::string default_out_dir(const std::string& model) {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  return fmt::format("runs/{}-{:%Y%m%d-%H%M%S}", model, tm);
}

std::string per_class_table(const EvalResult& r) {
  std::string out;
  const auto& names = fashion_class_names();
  for (size_t c = 0; c < r.class_total.size() && c < names.size(); ++c) {
    double acc = r.class_total[c] > 0 ? r.class_correct[c] / r.class_total[c] : NAN;
    fmt::format_to(std::back_inserter(out), "  {:<12}  {:.3f}  ({:.0f}/{:.0f})\n", names[c], acc, r.class_correct[c],
                   r.class_total[c]);
  }
  return out;
}

}  // namespace app
