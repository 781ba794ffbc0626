#include "apps/common/config.h"

#include <CLI/CLI.hpp>
#include <climits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "apps/common/metrics.h"
#include "engine/device.h"
#include "engine/error.h"
#include "engine/json_strict.h"

namespace app {

using engine::cat;
using Kind = ConfigField::Kind;

namespace {
std::string num(double v) { return exact(v); }
std::string b(bool v) { return v ? "true" : "false"; }
bool parse_bool(const std::string& s, const std::string& flag) {
  if (s.empty() || s == "true" || s == "1") return true;  // "" is a switch given on the command line
  if (s == "false" || s == "0") return false;
  engine::fail(cat("--", flag, ": '", s, "' is not true or false"));
}

// Field makers: one line per config member.
ConfigField dbl(std::string name, std::string metavar, double TrainConfig::*m, double lo, double hi, bool change,
                std::string help) {
  return {name,
          metavar,
          help,
          Kind::number,
          change,
          [m](const TrainConfig& c) { return num(c.*m); },
          [m, name, lo, hi](TrainConfig& c, const std::string& s) { c.*m = parse_double(s, name, lo, hi); }};
}
ConfigField integer(std::string name, std::string metavar, int64_t TrainConfig::*m, int64_t lo, int64_t hi, bool change,
                    std::string help) {
  return {name,
          metavar,
          help,
          Kind::number,
          change,
          [m](const TrainConfig& c) { return std::to_string(c.*m); },
          [m, name, lo, hi](TrainConfig& c, const std::string& s) { c.*m = parse_int(s, name, lo, hi); }};
}
ConfigField flag(std::string name, bool TrainConfig::*m, bool change, std::string help) {
  return {name,
          "",
          help,
          Kind::boolean,
          change,
          [m](const TrainConfig& c) { return b(c.*m); },
          [m, name](TrainConfig& c, const std::string& s) { c.*m = parse_bool(s, name); }};
}
ConfigField choice(std::string name, std::string TrainConfig::*m, std::vector<std::string> choices, bool change,
                   std::string help) {
  return {name,
          join(choices, "|"),
          help + " Choices: " + join(choices) + "; default " + TrainConfig{}.*m + ".",  // from the code
          Kind::string,
          change,
          [m](const TrainConfig& c) { return c.*m; },
          [m, name, choices](TrainConfig& c, const std::string& s) { c.*m = parse_choice(s, name, choices); }};
}
ConfigField text(std::string name, std::string metavar, std::string TrainConfig::*m, bool change, std::string help,
                 std::function<void(const std::string&)> check = nullptr) {
  return {name,
          metavar,
          help,
          Kind::string,
          change,
          [m](const TrainConfig& c) { return c.*m; },
          [m, check](TrainConfig& c, const std::string& s) {
            if (check) check(s);
            c.*m = s;
          }};
}
}  // namespace

const std::vector<ConfigField>& train_config_fields() {
  using C = TrainConfig;
  static const std::vector<ConfigField> fields = {
      dbl("lr", "LR", &C::lr, 1e-8, 100, false, "Peak learning rate of SGD (default 0.05)."),
      integer("epochs", "N", &C::epochs, 1, 100000, true,
              "Epochs to train (default 10). On --resume, a larger value extends the run."),
      integer("batch-size", "N", &C::batch_size, 1, 65536, false,
              "Examples per step (default 128). A final batch of a single example is dropped each epoch (batch "
              "norm cannot normalise one value per channel); see --drop-last."),
      flag("drop-last", &C::drop_last, false,
           "Drop the incomplete final batch of every epoch, so that every step has --batch-size examples."),
      dbl("momentum", "M", &C::momentum, 0, 0.9999, false, "SGD momentum (default 0.9; 0 = plain SGD)."),
      dbl("weight-decay", "WD", &C::weight_decay, 0, 1, false, "L2 weight decay added to the gradient (default 5e-4)."),
      flag("nesterov", &C::nesterov, false, "Use Nesterov momentum."),
      choice("schedule", &C::schedule, {"none", "step", "cosine"}, false,
             "Learning-rate schedule: none (constant), step (divide by 10 at 50% and 75% of the epochs, as the "
             "paper's 32k/48k of 64k iterations) or cosine (to 0 at the end). Applied per step."),
      dbl("warmup-epochs", "E", &C::warmup_epochs, 0, 1000, false,
          "Ramp the learning rate linearly from 0 over the first E epochs (fractions allowed; default 0)."),
      dbl("label-smoothing", "EPS", &C::label_smoothing, 0, 0.99, false, "Cross-entropy label smoothing (default 0)."),
      integer("seed", "N", &C::seed, 0, INT64_MAX, false,
              "Seed of the weight init, the data order and the augmentation (default 0)."),
      text("device", "DEV", &C::device, true,
           "auto (CUDA when available, else CPU), cpu, cuda or cuda:N (default auto).",
           [](const std::string& s) {
             if (s != "auto") engine::Device::parse(s);
           }),
      choice("conv", &C::conv, {"native", "cudnn", "fastest"}, true,
             "Convolution engine on CUDA: our own (native), cuDNN when compiled in, or fastest (per layer shape "
             "and direction, whichever of the two ran faster when timed on its first call)."),
      flag("tf32", &C::tf32, true, "The same as --precision tf32 (its older spelling)."),
      choice("precision", &C::precision, {"fp32", "tf32", "bf16"}, true,
             "Math of convolutions and linear layers: fp32; tf32 (CUDA: TF32 tensor cores for the float32 GEMMs, "
             "as PyTorch's allow_tf32; the CPU has none and computes fp32); bf16 = mixed precision as PyTorch's "
             "autocast: activations and the layers' operands in bfloat16, GEMMs accumulating in float32, weights, "
             "momentum, batch-norm statistics and the loss in float32 (docs/training.md, \"Mixed precision\")."),
      choice("layout", &C::layout, {"nchw", "nhwc", "auto"}, true,
             "Memory order of the activations: nchw (default) or nhwc, channels last (as PyTorch's "
             "channels_last; 1x1 convolutions become plain GEMMs); auto times a forward and backward of the first "
             "batch in each and trains in the faster, which config.json records. Weights and checkpoints are the "
             "same in all."),
      integer("threads", "N", &C::threads, 0, 1024, true,
              "CPU threads for OpenMP and OpenBLAS (default 0: their own defaults)."),
      integer("resize", "N", &C::resize, 8, 512, false,
              "Image side after bilinear resizing (default 96, as d2l's ResNet chapter; 28 = native size)."),
      flag("normalize", &C::normalize, false, "Normalise with the training set's mean 0.2860 and std 0.3530."),
      flag("augment", &C::augment, false,
           "Random crop with zero padding 4 (scaled to the resolution: 14 at 96 px) and random horizontal flip."),
      dbl("erase", "P", &C::erase, 0, 1, false,
          "Random erasing (Zhong et al. 2017) of training images with probability P: one rectangle of 2-40% of the "
          "image, aspect ratio log-uniform in [0.3, 3.3], as torchvision's RandomErasing (default 0: off)."),
      choice("erase-fill", &C::erase_fill, {"random", "zero"}, false,
             "What --erase writes: random intensities in [0, 1], normalised like the image (the paper's RE-R), or "
             "zero in the network input (torchvision's value=0 after Normalize) (default random)."),
      dbl("ema", "DECAY", &C::ema, 0, 0.999999, false,
          "Evaluate (validation, test, best checkpoint) with an exponential moving average of the weights and BN "
          "statistics, updated after every step: ema = DECAY * ema + (1 - DECAY) * w (default 0: off). It spans "
          "about 1 / (1 - DECAY) steps, so keep that well below the run's steps."),
      flag("no-wd-bn", &C::no_wd_bn, false,
           "No weight decay on BatchNorm weights and biases and on every bias (the rest keep --weight-decay)."),
      dbl("val-split", "F", &C::val_split, 0, 0.9, false,
          "Hold out this fraction of the training set (seeded) for validation; the best checkpoint and early "
          "stopping then follow validation accuracy instead of test accuracy (default 0: no split)."),
      integer("early-stop", "N", &C::early_stop, 0, 100000, true,
              "Stop after N epochs without a better validation (or test) accuracy (default 0: never)."),
      choice("init", &C::init, {"model", "xavier"}, false,
             "Weight initialisation: the model's own (He et al. for ResNets) or Xavier-uniform for every "
             "convolution and linear weight (d2l)."),
      choice("recipe", &C::recipe, {"none", "d2l"}, false,
             "Preset: d2l = d2l.ai's train_ch6 (Xavier init, plain SGD without momentum or weight decay, constant "
             "lr, no augmentation, 96 px, batch 256). Flags given explicitly override the preset."),
      text("data", "DIR", &C::data, true,
           "Folder with the four Fashion-MNIST IDX files, .gz or raw (default /usr/share/datasets/fashion-mnist, "
           "Debian package dataset-fashion-mnist)."),
      text("out", "DIR", &C::out, true,
           "Output folder (default runs/<model>-<YYYYmmdd-HHMMSS>; on --resume, the checkpoint's folder)."),
      text("resume", "CKPT", &C::resume, true,
           "Continue from a checkpoint (last.safetensors): weights, momentum, epoch and step, metrics so far. The "
           "configuration comes from the checkpoint; only --epochs, --device, --conv, --tf32, --precision, "
           "--layout, --cuda-graphs, --threads, --early-stop, --detect-anomaly, --data and --out may change."),
      integer("limit-train", "N", &C::limit_train, 0, INT64_MAX, false,
              "Use only the first N training images (default 0: all 60000)."),
      integer("limit-test", "N", &C::limit_test, 0, INT64_MAX, false,
              "Use only the first N test images (default 0: all 10000)."),
      flag("detect-anomaly", &C::detect_anomaly, true,
           "Check every op's output and gradient for NaN/Inf and stop (exit 3) at the first, naming the op, the "
           "module (e.g. layer3.1.bn2) and forward or backward. Slower; for finding where a divergence starts."),
      integer("log-every", "K", &C::log_every, 0, 1000000, false,
              "Every K steps, append the training loss and accuracy averaged over those steps to steps.csv "
              "(default 0: about 25 records per epoch). On CUDA each record reads the device once."),
      choice("cuda-graphs", &C::cuda_graphs, {"off", "on"}, true,
             "CUDA: after two eager warm-up steps, capture the whole training step (forward, loss, backward, SGD, "
             "EMA) as a CUDA graph and replay it while the batch shape stays the same (an incomplete final batch "
             "runs eagerly). If capture fails, or on the CPU, the run says why and goes on without graphs."),
  };
  return fields;
}

void add_train_options(CLI::App& cli, TrainConfig& cfg) {
  cli.add_option("MODEL", cfg.model, "a name from the model zoo");
  for (const auto& f : train_config_fields()) {
    const ConfigField* fp = &f;
    add_option(cli, f.name, f.metavar, f.help, [fp, &cfg](const std::string& v) { fp->set(cfg, v); });
  }
}

void apply_recipe(TrainConfig& cfg, const std::set<std::string>& given) {
  if (cfg.recipe == "none") return;
  ENGINE_CHECK(cfg.recipe == "d2l", "unknown recipe '", cfg.recipe, "'");
  auto set = [&](const std::string& name, const std::string& value) {
    if (given.count(name)) return;
    for (const auto& f : train_config_fields())
      if (f.name == name) f.set(cfg, value);
  };
  set("init", "xavier");
  set("momentum", "0");
  set("weight-decay", "0");
  set("nesterov", "false");
  set("schedule", "none");
  set("warmup-epochs", "0");
  set("label-smoothing", "0");
  set("augment", "false");
  set("normalize", "false");
  set("resize", "96");
  set("batch-size", "256");
}

void validate(const TrainConfig& c) {
  ENGINE_CHECK(c.warmup_epochs < static_cast<double>(c.epochs) || c.warmup_epochs == 0, "--warmup-epochs ",
               c.warmup_epochs, " must be shorter than --epochs ", c.epochs);
  ENGINE_CHECK(!c.nesterov || c.momentum > 0, "--nesterov needs --momentum > 0");
  ENGINE_CHECK(c.early_stop == 0 || c.epochs > 1, "--early-stop needs more than one epoch");
  ENGINE_CHECK(!c.tf32 || c.precision != "bf16", "--tf32 (= --precision tf32) contradicts --precision bf16");
}

std::string math_mode(const TrainConfig& c) { return c.tf32 && c.precision == "fp32" ? "tf32" : c.precision; }

engine::DType activation_dtype(const TrainConfig& c) {
  return math_mode(c) == "bf16" ? engine::DType::bf16 : engine::DType::f32;
}

std::string config_to_json(const TrainConfig& cfg) {
  // JSON holds UTF-8 only; said here, before training, rather than when the first checkpoint is saved.
  auto utf8 = [](const std::string& name, const std::string& v) {
    ENGINE_CHECK(engine::is_utf8(v), name, " '", v,
                 "' is not valid UTF-8, which config.json and the checkpoints must hold: use a UTF-8 name");
  };
  utf8("the model name", cfg.model);
  nlohmann::ordered_json out = {{"model", cfg.model}};  // then the fields in the order of --help
  for (const auto& f : train_config_fields()) {
    if (f.name == "resume") continue;
    const std::string v = f.get(cfg);
    switch (f.kind) {
      case Kind::number:
        out[f.name] = nlohmann::ordered_json::parse(v);  // our own exact text: an integer stays one
        break;
      case Kind::boolean:
        out[f.name] = v == "true";
        break;
      case Kind::string:
        utf8("--" + f.name, v);
        out[f.name] = v;
        break;
    }
  }
  return out.dump(2) + "\n";
}

engine::Metadata config_to_metadata(const TrainConfig& cfg) {
  engine::Metadata m;
  m["config.model"] = cfg.model;
  for (const auto& f : train_config_fields())
    if (f.name != "resume") m["config." + f.name] = f.get(cfg);
  return m;
}

const std::set<std::string>& fields_added_later() {
  static const std::set<std::string> names = {"drop-last", "detect-anomaly", "log-every", "erase",       "erase-fill",
                                              "ema",       "no-wd-bn",       "precision", "cuda-graphs", "layout"};
  return names;
}

TrainConfig config_from_metadata(const engine::Metadata& meta, const std::string& path) {
  TrainConfig cfg;
  auto it = meta.find("config.model");
  ENGINE_CHECK(it != meta.end(), path, ": no training configuration in the metadata (not written by train_fmnist?)");
  cfg.model = it->second;
  for (const auto& f : train_config_fields()) {
    if (f.name == "resume") continue;
    auto v = meta.find("config." + f.name);
    if (v == meta.end() && fields_added_later().count(f.name)) continue;
    ENGINE_CHECK(v != meta.end(), path, ": metadata lacks config.", f.name);
    try {
      f.set(cfg, v->second);
    } catch (const engine::EngineError& e) {
      engine::fail(cat(path, ": bad saved configuration: ", e.what()));
    }
  }
  return cfg;
}

namespace {
std::string changeable_on_resume() {  // from the table, so the message cannot drift from it
  std::vector<std::string> names;
  for (const auto& f : train_config_fields())
    if (f.may_change_on_resume && f.name != "resume") names.push_back("--" + f.name);
  return join(names, ", ");
}
}  // namespace

TrainConfig merge_for_resume(const TrainConfig& saved, const TrainConfig& cli_cfg, const std::set<std::string>& given) {
  TrainConfig out = saved;
  out.resume = cli_cfg.resume;
  ENGINE_CHECK(cli_cfg.model.empty() || cli_cfg.model == saved.model, "--resume: the checkpoint is a ", saved.model,
               ", not a ", cli_cfg.model);
  for (const auto& f : train_config_fields()) {
    if (f.name == "resume" || !given.count(f.name)) continue;
    std::string mine = f.get(cli_cfg), theirs = f.get(saved);
    if (f.may_change_on_resume) {
      f.set(out, mine);
    } else {
      ENGINE_CHECK(mine == theirs, "--resume: --", f.name, " ", mine, " differs from the checkpoint's ", theirs,
                   "; a resumed run keeps its configuration (only ", changeable_on_resume(), " may change)");
    }
  }
  return out;
}

}  // namespace app
