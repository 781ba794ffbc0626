// The layers a ResNet is made of, each a thin Module over one op. Parameter names follow torch.nn.
#pragma once
#include <memory>
#include <vector>

#include "engine/nn/module.h"
#include "engine/ops.h"

namespace engine::nn {

// Mixed precision (bf16), as PyTorch's autocast: the parameters stay float32 (the masters the optimizer updates);
// a layer whose input is bf16 casts its float32 weight and bias to bf16 for its op (differentiable: their
// gradients come back as float32), batch norm takes bf16 activations with float32 parameters and statistics. Any
// other mismatch of dtypes is the op's error.
//
// The bf16 weights are cached: a parameter (a leaf) keeps its bf16 copy (TensorImpl::bf16_copy) with the version
// of its storage it was made from (Storage::version). A forward reuses the copy while the versions agree and
// casts afresh (and caches) when they differ, i.e. after any in-place write of the master that SGD did not
// follow. SGD writes the copy in its update kernel, right after each new weight (kernels/sgd.h), so in training
// the copy is always current and no forward casts. The result is differentiable back to the master exactly as
// cast (engine::cast_precomputed).
// layout nhwc: a 4-D parameter (a conv weight [OC, C, KH, KW]) comes back channels last, [OC, KH, KW, C], in
// either precision; its bf16 copy is kept in that order (TensorImpl::bf16_copy_channels_last), so a channels-last
// forward runs no permute for it either.
Tensor param_for_input(const Tensor& param, const Tensor& x, Layout layout = Layout::nchw);
// The cache is on by default; off, every call casts as before (for tests and for ruling the cache out).
void set_bf16_weight_cache(bool on);
bool bf16_weight_cache();
// How many float32 -> bf16 weight conversions param_for_input has run, process-wide (cache misses, and every
// call with the cache off): tests see with it that the cache is used.
int64_t bf16_weight_casts();
// A classifier's logits under mixed precision: x cast to `activations` (bf16, or x's own dtype for a plain
// forward), an NCHW image batch permuted to [N, H, W, C] for a channels-last model (Module::set_layout; a view for
// one channel), the model run on it, the logits cast back to float32 for the loss and the metrics.
Tensor forward_logits(Module& model, const Tensor& x, DType activations);

// Weights start with PyTorch's defaults (kaiming_uniform with a = sqrt(5), i.e. U(-1/sqrt(fan_in), ..));
// models re-initialise them (He normal for ResNets). default_init = false leaves them zero instead, for callers
// that initialise every weight themselves (models/: drawing 60M numbers twice makes resnet152 slow to build).
class Conv2d : public Module {
 public:
  Conv2d(int in_channels, int out_channels, int kernel, int stride = 1, int padding = 0, bool bias = true,
         bool default_init = true);
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias;  // [out, in, k, k], [out] or undefined
  int in_channels, out_channels, kernel, stride, padding;
};

class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int channels, double eps = 1e-5, double momentum = 0.1);
  Tensor forward(const Tensor& x) override;
  Tensor forward_relu(const Tensor& x);                              // relu(forward(x)) as one fused op
  Tensor forward_add_relu(const Tensor& x, const Tensor& residual);  // relu(forward(x) + residual), fused
  Tensor weight, bias, running_mean, running_var;                    // gamma = 1, beta = 0, mean = 0, var = 1
  int channels;
  double eps, momentum;
};

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override { return relu(x); }
};

class MaxPool2d : public Module {
 public:
  MaxPool2d(int kernel, int stride, int padding = 0);
  Tensor forward(const Tensor& x) override;
  Pool2dParams params;  // its layout is the module's (set_layout)
};

class AdaptiveAvgPool2d : public Module {
 public:
  AdaptiveAvgPool2d(int out_h, int out_w) : out_h(out_h), out_w(out_w) {}
  Tensor forward(const Tensor& x) override { return adaptive_avg_pool2d(x, out_h, out_w, layout()); }
  int out_h, out_w;
};

class Flatten : public Module {
 public:
  Tensor forward(const Tensor& x) override;  // in NCHW order in either layout
};

class Linear : public Module {
 public:
  Linear(int in_features, int out_features, bool bias = true);
  Tensor forward(const Tensor& x) override { return linear(x, param_for_input(weight, x), param_for_input(bias, x)); }
  Tensor weight, bias;  // [out, in], [out]
  int in_features, out_features;
};

// Children are named "0", "1", ... as in torch.nn.Sequential.
class Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<std::shared_ptr<Module>> layers);
  void push_back(std::shared_ptr<Module> m);
  Tensor forward(const Tensor& x) override;
  size_t size() const { return children().size(); }
};

}  // namespace engine::nn
