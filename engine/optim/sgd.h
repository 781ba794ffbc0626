// SGD with momentum, Nesterov and weight decay (torch.optim.SGD semantics, dampening 0). One fused update
// over all parameters per step; the momentum buffers are state a checkpoint saves.
#pragma once
#include <vector>

#include "engine/tensor.h"

namespace engine::optim {

struct SgdOptions {
  double lr = 0.05;
  double momentum = 0.9;
  double weight_decay = 0.0;
  bool nesterov = false;
};

// Parameters that share a weight decay, as torch.optim's param_groups (only the decay can differ here).
struct ParamGroup {
  std::vector<Tensor> params;
  double weight_decay = 0.0;
};

class SGD {
 public:
  SGD(std::vector<Tensor> params, SgdOptions options);
  // Groups with their own weight decay (options.weight_decay is then unused); parameters keep the groups' order.
  SGD(const std::vector<ParamGroup>& groups, SgdOptions options);
  void step();       // parameters without a gradient are skipped
  void zero_grad();  // drops every parameter's gradient
  void set_lr(double lr) { options_.lr = lr; }
  double lr() const { return options_.lr; }
  const SgdOptions& options() const { return options_; }
  // Momentum buffers, one per parameter (undefined until the first step touches it); for checkpoints.
  std::vector<Tensor>& momentum_buffers() { return buffers_; }
  const std::vector<Tensor>& params() const { return params_; }
  double weight_decay_of(size_t i) const { return weight_decay_[i]; }  // of params()[i]

 private:
  std::vector<Tensor> params_;
  std::vector<double> weight_decay_;  // per parameter
  std::vector<Tensor> buffers_;
  SgdOptions options_;
};

}  // namespace engine::optim
