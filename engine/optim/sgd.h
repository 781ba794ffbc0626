// SGD with momentum, Nesterov and weight decay (torch.optim.SGD semantics, dampening 0). One fused update
// over all parameters per step; the momentum buffers are state a checkpoint saves. The learning rate lives in a
// one-element tensor on the parameters' device that the update kernel reads (kernels/sgd.h), so a captured CUDA
// graph of the step replays with the rate set_lr wrote last.
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
  // Movable, not copyable: two optimizers sharing one learning-rate tensor would overwrite each other's rate.
  SGD(SGD&&) = default;
  SGD& operator=(SGD&&) = default;
  SGD(const SGD&) = delete;
  SGD& operator=(const SGD&) = delete;
  void step();       // parameters without a gradient are skipped
  void zero_grad();  // drops every parameter's gradient
  // Writes the rate into lr_tensor() when it changed (a one-element fill kernel queued on the stream on CUDA, so no
  // host sync; a store on the CPU).
  void set_lr(double lr);
  double lr() const { return options_.lr; }
  // The one-element tensor the update kernel reads the rate from (the parameters' dtype and device).
  const Tensor& lr_tensor() const { return lr_; }
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
  Tensor lr_;  // options_.lr in the parameters' dtype, on their device
};

}  // namespace engine::optim
