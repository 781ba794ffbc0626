#include "engine/optim/sgd.h"

#include "engine/ops/common.h"
#include "kernels/sgd.h"

namespace engine::optim {

SGD::SGD(std::vector<Tensor> params, SgdOptions options)
    : params_(std::move(params)), buffers_(params_.size()), options_(options) {
  ENGINE_CHECK(options.lr >= 0 && options.momentum >= 0 && options.weight_decay >= 0, "SGD: lr ", options.lr,
               ", momentum ", options.momentum, " and weight decay ", options.weight_decay, " must be non-negative");
  ENGINE_CHECK(!options.nesterov || options.momentum > 0, "SGD: Nesterov needs momentum > 0");
  for (size_t i = 0; i < params_.size(); ++i) {
    check_defined("SGD", "a parameter", params_[i]);
    if (i) check_same("SGD", {{"parameter 0", params_[0]}, {"another parameter", params_[i]}});
  }
}

void SGD::step() {
  if (params_.empty()) return;
  // Two groups, so that each fused call has one value of first_step; membership is fixed before any buffer
  // is created.
  std::vector<bool> fresh(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) fresh[i] = options_.momentum > 0 && !buffers_[i].defined();
  for (bool first : {true, false}) {
    std::vector<kernels::SgdTensor> table;
    for (size_t i = 0; i < params_.size(); ++i) {
      Tensor g = params_[i].grad();
      if (!g.defined()) continue;
      ENGINE_CHECK(g.shape() == params_[i].shape(), "SGD: gradient ", shape_str(g.shape()), " for parameter ",
                   shape_str(params_[i].shape()));
      if (fresh[i] != first) continue;
      if (fresh[i]) buffers_[i] = Tensor::empty(params_[i].shape(), params_[i].dtype(), params_[i].device());
      table.push_back({params_[i].raw_data(), g.raw_data(), buffers_[i].defined() ? buffers_[i].raw_data() : nullptr,
                       params_[i].numel()});
    }
    if (table.empty()) continue;
    kernels::SgdParams p{options_.lr, options_.momentum, options_.weight_decay, options_.nesterov, first};
    dispatch_dtype(params_[0].dtype(), [&](auto tag) {
      using T = decltype(tag);
      if (params_[0].is_cuda()) {
        ENGINE_CUDA_ONLY("SGD", kernels::cuda::sgd_update<T>(table.data(), static_cast<int>(table.size()), p));
      } else {
        kernels::cpu::sgd_update<T>(table.data(), static_cast<int>(table.size()), p);
      }
    });
  }
}

void SGD::zero_grad() {
  for (auto& p : params_) p.zero_grad();
}

}  // namespace engine::optim
