#include "engine/optim/sgd.h"

#include <algorithm>

#include "engine/ops.h"
#include "engine/ops/common.h"
#include "kernels/sgd.h"

namespace engine::optim {

namespace {
std::vector<ParamGroup> one_group(std::vector<Tensor> params, double weight_decay) {
  return {ParamGroup{std::move(params), weight_decay}};
}

// Stores T(lr), the value the kernels used to take by argument, so the update is bitwise what it was.
// On CUDA a fill kernel queued on the stream: a host-to-device copy would wait for the queued steps (a host sync
// per step under a schedule, which CUDA graphs and the eager pipeline both lose by).
void write_lr(Tensor& t, double lr) { t.fill_(lr); }

// A parameter's bf16 copy for the kernel to write next to the new weight (null when it has none), and its layout.
// Even a stale copy (the master written since) is handed over: the kernel rewrites every element from the new
// weight.
void set_bf16_copy(const Tensor& param, kernels::SgdTensor& st) {
  const TensorImpl& m = *param.impl();
  if (!m.bf16_copy) return;
  const Tensor copy(m.bf16_copy);
  const bool cl = m.bf16_copy_channels_last;
  const Shape& s = param.shape();
  const bool fits = !cl || s.size() == 4;
  ENGINE_CHECK(fits && copy.dtype() == DType::bf16 && copy.shape() == (cl ? channels_last_shape(s) : s) &&
                   copy.device() == param.device(),
               "SGD: the bf16 copy ", copy.str(), " does not match its parameter ", param.str(),
               cl ? " (channels last)" : "");
  st.w_bf16 = copy.data<kernels::bf16>();
  if (cl) st.bf16_c = s[1], st.bf16_kk = s[2] * s[3];
}
}  // namespace

SGD::SGD(std::vector<Tensor> params, SgdOptions options)
    : SGD(one_group(std::move(params), options.weight_decay), options) {}

SGD::SGD(const std::vector<ParamGroup>& groups, SgdOptions options) : options_(options) {
  for (const auto& g : groups) {
    ENGINE_CHECK(g.weight_decay >= 0, "SGD: weight decay ", g.weight_decay, " must be non-negative");
    params_.insert(params_.end(), g.params.begin(), g.params.end());
    weight_decay_.insert(weight_decay_.end(), g.params.size(), g.weight_decay);
  }
  buffers_.resize(params_.size());
  ENGINE_CHECK(options.lr >= 0 && options.momentum >= 0 && options.weight_decay >= 0, "SGD: lr ", options.lr,
               ", momentum ", options.momentum, " and weight decay ", options.weight_decay, " must be non-negative");
  ENGINE_CHECK(!options.nesterov || options.momentum > 0, "SGD: Nesterov needs momentum > 0");
  for (size_t i = 0; i < params_.size(); ++i) {
    check_computable("SGD", "a parameter", params_[i]);
    if (i) check_same("SGD", {{"parameter 0", params_[0]}, {"another parameter", params_[i]}});
  }
  lr_ = params_.empty() ? Tensor::empty({1}) : Tensor::empty({1}, params_[0].dtype(), params_[0].device());
  write_lr(lr_, options_.lr);
}

void SGD::set_lr(double lr) {
  ENGINE_CHECK(lr >= 0, "SGD: lr ", lr, " must be non-negative");
  if (lr == options_.lr) return;
  write_lr(lr_, lr);
  options_.lr = lr;
}

void SGD::step() {
  if (params_.empty()) return;
  // One fused call per (first_step, weight decay) pair: first-step membership is fixed before any buffer is
  // created; the decays are those of the parameter groups (one or two values in practice).
  std::vector<bool> fresh(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) fresh[i] = options_.momentum > 0 && !buffers_[i].defined();
  // Every gradient is checked before any buffer is made: a momentum buffer made and then left unwritten by a
  // throw would count as initialised at the next step. The kernel reads the gradient as the parameter's type on
  // its device, so a gradient set by hand (Tensor::set_grad) in another dtype or on another device is refused.
  for (const Tensor& w : params_) {
    const Tensor g = w.grad();
    ENGINE_CHECK(!g.defined() || (g.shape() == w.shape() && g.dtype() == w.dtype() && g.device() == w.device()),
                 "SGD: gradient ", shape_str(g.shape()), " ", dtype_name(g.dtype()), " on ", g.device().str(),
                 " for parameter ", shape_str(w.shape()), " ", dtype_name(w.dtype()), " on ", w.device().str(),
                 "; a gradient must match its parameter's shape, dtype and device");
  }
  std::vector<size_t> updated;  // the parameters written below
  std::vector<double> decays;
  for (double wd : weight_decay_)
    if (std::find(decays.begin(), decays.end(), wd) == decays.end()) decays.push_back(wd);
  for (bool first : {true, false})
    for (double wd : decays) {
      std::vector<kernels::SgdTensor> table;
      for (size_t i = 0; i < params_.size(); ++i) {
        if (weight_decay_[i] != wd) continue;
        Tensor g = params_[i].grad();
        if (!g.defined()) continue;
        if (fresh[i] != first) continue;
        if (fresh[i]) buffers_[i] = Tensor::empty(params_[i].shape(), params_[i].dtype(), params_[i].device());
        kernels::SgdTensor st{params_[i].raw_data(), g.raw_data(),
                              buffers_[i].defined() ? buffers_[i].raw_data() : nullptr, params_[i].numel()};
        set_bf16_copy(params_[i], st);
        table.push_back(st);
        updated.push_back(i);
      }
      if (table.empty()) continue;
      kernels::SgdParams p{lr_.raw_data(), options_.momentum, wd, options_.nesterov, first};
      dispatch_compute("SGD", params_[0].dtype(), [&](auto tag) {
        using T = decltype(tag);
        ENGINE_KERNEL("SGD", params_[0], sgd_update<T>, table.data(), static_cast<int>(table.size()), p);
      });
    }
  // The masters changed in place: a new version, and their copies, written by the same kernel, are current for it.
  for (size_t i : updated) {
    params_[i].bump_version();
    TensorImpl& m = *params_[i].impl();
    if (m.bf16_copy) m.bf16_copy_version = params_[i].version();
  }
}

void SGD::zero_grad() {
  for (auto& p : params_) p.zero_grad();
}

}  // namespace engine::optim
