#include "engine/optim/ema.h"

#include <utility>
#include <vector>

#include "engine/checkpoint.h"
#include "engine/ops/common.h"
#include "kernels/ema.h"

namespace engine::optim {

namespace {
nn::NamedTensors model_tensors(const nn::Module& model) {
  nn::NamedTensors all = model.named_parameters();
  for (auto& b : model.named_buffers()) all.push_back(std::move(b));
  return all;
}
}  // namespace

ModelEma::ModelEma(const nn::Module& model, double decay) : decay_(decay) {
  ENGINE_CHECK(decay >= 0 && decay < 1, "EMA decay ", decay, " must lie in [0, 1)");
  for (const auto& [name, t] : model_tensors(model)) {
    if (t.dtype() != DType::i32) check_computable("EMA", cat("'", name, "'").c_str(), t);
    shadow_.emplace_back(name, t.detach().clone());
  }
}

void ModelEma::update(const nn::Module& model) {
  const nn::NamedTensors now = model_tensors(model);
  ENGINE_CHECK(now.size() == shadow_.size(), "EMA: the model has ", now.size(), " tensors but the average ",
               shadow_.size(), " (another model?)");
  std::vector<kernels::EmaTensor> f32, f64;
  for (size_t i = 0; i < now.size(); ++i) {
    const Tensor& w = now[i].second;
    Tensor& e = shadow_[i].second;
    ENGINE_CHECK(w.shape() == e.shape() && w.dtype() == e.dtype() && w.device() == e.device(), "EMA: '", now[i].first,
                 "' is ", w.str(), " but its average ", e.str());
    if (w.dtype() == DType::i32) {
      e.copy_(w);  // counters are not averaged
      continue;
    }
    if (w.dtype() != DType::f32) check_computable("EMA", cat("'", now[i].first, "'").c_str(), w);  // f64 passes
    (w.dtype() == DType::f32 ? f32 : f64).push_back({e.raw_data(), w.raw_data(), w.numel()});
  }
  auto run = [&](auto tag, const std::vector<kernels::EmaTensor>& table) {
    using T = decltype(tag);
    if (table.empty()) return;
    ENGINE_KERNEL("EMA", shadow_[0].second, ema_update<T>, table.data(), static_cast<int>(table.size()), decay_);
  };
  run(float{}, f32);
  run(double{}, f64);
  // The averages changed in place (one of them is a model's parameter while EmaScope has swapped them in).
  for (auto& [name, e] : shadow_) e.bump_version();
}

nn::NamedTensors ModelEma::checkpoint_tensors() const {
  nn::NamedTensors out;
  for (const auto& [name, t] : shadow_) out.emplace_back(kEmaPrefix + name, t);
  return out;
}

bool ModelEma::load(const std::string& path) {
  const SafetensorsFile file = read_safetensors(path);
  size_t found = 0;
  for (const auto& [name, t] : shadow_) found += file.find(kEmaPrefix + name) != nullptr;
  if (found == 0) return false;
  for (auto& [name, t] : shadow_) {
    const StoredTensor* st = file.find(kEmaPrefix + name);
    ENGINE_CHECK(st, "checkpoint ", path, ": holds ", found, " of the ", shadow_.size(), " EMA tensors but not '",
                 kEmaPrefix, name, "'");
    ENGINE_CHECK(st->shape == t.shape(), "checkpoint ", path, ": '", kEmaPrefix, name, "' has shape ",
                 shape_str(st->shape), " but the model's is ", shape_str(t.shape()));
    t.copy_(st->to_tensor().to(t.dtype()).to(t.device()));
  }
  return true;
}

void ModelEma::swap(nn::Module& model) {
  // Going in, the averages drop their bf16 copies: a replayed CUDA graph (engine/step_graph.h) updates them on the
  // device without the host's version bump, so a copy made at an earlier evaluation could look current. The
  // masters keep theirs: SGD refreshes those in the step itself, graph or not, and a graph writes into them.
  if (!swapped_)
    for (auto& [name, t] : shadow_)
      if (t.defined()) t.impl()->bf16_copy = nullptr;
  for (auto& [name, t] : shadow_) std::swap(model.find(name), t);
  swapped_ = !swapped_;
}

}  // namespace engine::optim
