// The training configuration: one table of fields drives the command line (--name VALUE and its --help), the
// run's config.json, the checkpoint metadata ("config.<name>") and the checks made when a run is resumed.
#pragma once
#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "apps/common/cli.h"
#include "apps/common/fmnist.h"
#include "engine/checkpoint.h"

namespace app {

struct TrainConfig {
  std::string model;  // positional: a name from models::names()
  double lr = 0.05;
  int64_t epochs = 10;
  int64_t batch_size = 128;
  bool drop_last = false;  // drop every incomplete final batch (a final batch of one is always dropped)
  double momentum = 0.9;
  double weight_decay = 5e-4;
  bool nesterov = false;
  std::string schedule = "none";  // none | step | cosine
  double warmup_epochs = 0;
  double label_smoothing = 0;
  int64_t seed = 0;
  std::string device = "auto";
  std::string conv = "native";     // native | cudnn
  bool tf32 = false;               // the older spelling of precision = "tf32"
  std::string precision = "fp32";  // fp32 | tf32 | bf16 (math_mode below)
  std::string layout = "nchw";     // nchw | nhwc (channels last) | auto (train: choose_layout)
  int64_t threads = 0;             // 0: leave OpenMP/OpenBLAS defaults
  int64_t resize = 96;
  bool normalize = false;
  bool augment = false;
  double erase = 0;                   // random-erasing probability per training image; 0: off
  std::string erase_fill = "random";  // random | zero
  double ema = 0;                     // EMA decay of the weights used for evaluation; 0: off
  bool no_wd_bn = false;              // no weight decay on BatchNorm parameters and biases
  double val_split = 0;
  int64_t early_stop = 0;       // epochs without improvement before stopping; 0: never
  std::string init = "model";   // model (the model's own init, He for ResNets) | xavier
  std::string recipe = "none";  // none | d2l
  std::string data = kDefaultDataDir;
  std::string out;                          // default runs/<model>-<YYYYmmdd-HHMMSS>
  std::string resume;                       // checkpoint to continue from (not saved in the config)
  int64_t limit_train = 0, limit_test = 0;  // 0: all
  bool detect_anomaly = false;              // engine::set_detect_anomaly for the run
  std::string cuda_graphs = "off";          // off | on: replay the step as a CUDA graph (engine/step_graph.h)
  int64_t log_every = 0;                    // steps per steps.csv record; 0: about 25 per epoch
};

struct ConfigField {
  std::string name;     // CLI flag and config key
  std::string metavar;  // empty: a switch
  std::string help;
  enum class Kind { number, boolean, string } kind;
  bool may_change_on_resume;  // e.g. --epochs to extend a run, --device; the rest must match the checkpoint
  std::function<std::string(const TrainConfig&)> get;
  std::function<void(TrainConfig&, const std::string&)> set;  // validates; throws with the valid choices
};

const std::vector<ConfigField>& train_config_fields();

// Registers every field as an option of `cli` (set up by configure_cli), and MODEL as its positional, writing
// into `cfg`. After parsing, given_options(cli) says which fields the user gave explicitly.
void add_train_options(CLI::App& cli, TrainConfig& cfg);

// Fills in the recipe's settings for every field the user did not give explicitly.
//  d2l: d2l.ai's train_ch6 (Xavier-uniform conv/linear weights, plain SGD without momentum or weight decay,
//       no augmentation, no normalisation, 96 px, batch 256, constant lr).
void apply_recipe(TrainConfig& cfg, const std::set<std::string>& given);

// Cross-field checks (warmup shorter than the run, ...). The model name is checked by the app.
void validate(const TrainConfig& cfg);
// The math a run asks for, "fp32", "tf32" or "bf16": --precision, or tf32 where only the older --tf32 was given.
std::string math_mode(const TrainConfig& cfg);
// The dtype of activations and of the convolution and linear operands: bf16 for --precision bf16, else float32.
engine::DType activation_dtype(const TrainConfig& cfg);

std::string config_to_json(const TrainConfig& cfg);           // one flat, pretty-printed object
engine::Metadata config_to_metadata(const TrainConfig& cfg);  // "config.<name>" -> value
// The configuration saved in a checkpoint; throws naming `path` if keys are missing or invalid.
TrainConfig config_from_metadata(const engine::Metadata& meta, const std::string& path);
// Fields added after the first checkpoints were written: a checkpoint without one ran with its default.
const std::set<std::string>& fields_added_later();
// Resuming: start from the checkpoint's config, take the fields that may change from `cli_cfg` when given, and
// reject any other explicitly given field whose value differs.
TrainConfig merge_for_resume(const TrainConfig& saved, const TrainConfig& cli_cfg, const std::set<std::string>& given);

}  // namespace app
