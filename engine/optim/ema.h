// Exponential moving average of a model's weights for evaluation (--ema DECAY), as timm's ModelEmaV2: after every
// optimizer step, for every parameter and every buffer (BatchNorm's running mean and variance are averaged too,
// not copied),
//   ema = decay * ema + (1 - decay) * w
// starting from a copy of the model when the average is created. One fused kernel per step (kernels/ema.h).
// Evaluation swaps the averages into the model's slots (no copy) and swaps them back afterwards.
#pragma once
#include <string>

#include "engine/nn/module.h"

namespace engine::optim {

// Checkpoint names of the averages: "ema.<parameter or buffer name>".
inline constexpr char kEmaPrefix[] = "ema.";

class ModelEma {
 public:
  // Copies the model's parameters and buffers (same devices and dtypes). decay in [0, 1).
  ModelEma(const nn::Module& model, double decay);
  void update(const nn::Module& model);  // after each optimizer step
  double decay() const { return decay_; }
  // The averages under the model's names, parameters first, then buffers.
  const nn::NamedTensors& tensors() const { return shadow_; }
  // The averages under checkpoint names ("ema.<name>"), for save_checkpoint's extra tensors.
  nn::NamedTensors checkpoint_tensors() const;
  // Loads "ema.<name>" for every average from a checkpoint written with them; false when the file has none,
  // throws naming the tensor when only some are there or a shape differs.
  bool load(const std::string& path);
  // Exchanges the averages with the model's own tensors; a second call restores the model.
  void swap(nn::Module& model);

 private:
  double decay_;
  nn::NamedTensors shadow_;
  bool swapped_ = false;  // the averages are in the model's slots
};

// Evaluates with the averages for the scope's lifetime (nothing when ema is null); restores on exceptions too.
class EmaScope {
 public:
  EmaScope(ModelEma* ema, nn::Module& model) : ema_(ema), model_(model) {
    if (ema_) ema_->swap(model_);
  }
  ~EmaScope() {
    if (ema_) ema_->swap(model_);
  }
  EmaScope(const EmaScope&) = delete;
  EmaScope& operator=(const EmaScope&) = delete;

 private:
  ModelEma* ema_;
  nn::Module& model_;
};

}  // namespace engine::optim
