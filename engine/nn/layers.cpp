#include "engine/nn/layers.h"

#include <atomic>
#include <cmath>

#include "engine/ops/common.h"
#include "engine/random.h"
#include "kernels/elementwise.h"

namespace engine::nn {

namespace {
std::atomic<bool> g_bf16_cache{true};
std::atomic<int64_t> g_bf16_casts{0};
}  // namespace

void set_bf16_weight_cache(bool on) { g_bf16_cache = on; }
bool bf16_weight_cache() { return g_bf16_cache; }
int64_t bf16_weight_casts() { return g_bf16_casts; }

Tensor param_for_input(const Tensor& param, const Tensor& x, Layout layout) {
  if (!param.defined()) return param;
  const bool permute = layout == Layout::nhwc && param.dim() == 4;  // a conv weight for a channels-last op
  auto arranged = [permute](const Tensor& t) { return permute ? to_channels_last(t) : t; };
  if (x.dtype() != DType::bf16 || param.dtype() != DType::f32) return arranged(param);
  // Only a leaf is cached: a computed weight's value is its graph's, and it is made afresh each time anyway.
  if (!g_bf16_cache || param.grad_fn()) {
    ++g_bf16_casts;
    return arranged(cast(param, DType::bf16));
  }
  TensorImpl& master = *param.impl();
  if (master.bf16_copy && master.bf16_copy_channels_last != permute) master.bf16_copy = nullptr;  // the other order
  if (!master.bf16_copy) {
    ++g_bf16_casts;
    master.bf16_copy = arranged(param.detach()).to(DType::bf16).impl();  // detached: no graph, nothing saved
    master.bf16_copy_version = param.version();
    master.bf16_copy_channels_last = permute;
  } else if (master.bf16_copy_version != param.version()) {
    // Refreshed in place, not replaced: a captured CUDA graph (engine/step_graph.h) reads this copy and its SGD
    // writes it, at the address it had at capture.
    ++g_bf16_casts;
    Tensor copy(master.bf16_copy);
    if (permute)
      copy.copy_(to_channels_last(param.detach().to(DType::bf16)));
    else
      ENGINE_KERNEL("param_for_input", param, convert, param.data<float>(), copy.data<kernels::bf16>(), param.numel());
    master.bf16_copy_version = param.version();
  }
  return cast_precomputed(param, Tensor(master.bf16_copy), permute);
}

Tensor forward_logits(Module& model, const Tensor& x, DType activations) {
  Tensor in = cast(x, activations);  // cast first: a bf16 permute moves half the bytes
  if (model.layout() == Layout::nhwc && in.dim() == 4) in = to_channels_last(in);
  const Tensor logits = model(in);
  return logits.dtype() == DType::bf16 ? cast(logits, DType::f32) : logits;
}

Conv2d::Conv2d(int in, int out, int k, int s, int p, bool with_bias, bool default_init)
    : in_channels(in), out_channels(out), kernel(k), stride(s), padding(p) {
  ENGINE_CHECK(in > 0 && out > 0 && k > 0 && s > 0 && p >= 0, "Conv2d(", in, ", ", out, ", kernel ", k, ", stride ", s,
               ", padding ", p, "): sizes must be positive");
  double bound = 1.0 / std::sqrt(static_cast<double>(in * k * k));
  weight = Tensor::zeros({out, in, k, k});
  if (default_init) uniform_(weight, -bound, bound);
  register_parameter("weight", &weight);
  if (with_bias) {
    bias = Tensor::zeros({out});
    if (default_init) uniform_(bias, -bound, bound);
    register_parameter("bias", &bias);
  }
}

Tensor Conv2d::forward(const Tensor& x) {
  Conv2dParams p;
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = padding;
  p.layout = layout();
  // Channels last wants the weight [OC, KH, KW, C]: param_for_input permutes it (differentiably, so the master and
  // its gradient keep torchvision's [OC, C, KH, KW]); a bf16 copy is kept in that order and SGD writes it so.
  return conv2d(x, param_for_input(weight, x, p.layout), param_for_input(bias, x), p);
}

BatchNorm2d::BatchNorm2d(int c, double eps, double momentum) : channels(c), eps(eps), momentum(momentum) {
  ENGINE_CHECK(c > 0, "BatchNorm2d(", c, "): channels must be positive");
  weight = Tensor::full({c}, 1.0);
  bias = Tensor::zeros({c});
  running_mean = Tensor::zeros({c});
  running_var = Tensor::full({c}, 1.0);
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
  register_buffer("running_mean", &running_mean);
  register_buffer("running_var", &running_var);
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  return batch_norm2d(x, weight, bias, running_mean, running_var, is_training(), momentum, eps, layout());
}

Tensor BatchNorm2d::forward_relu(const Tensor& x) {
  return scoped(x, [&] {
    return batch_norm2d_relu(x, weight, bias, running_mean, running_var, is_training(), momentum, eps, layout());
  });
}

Tensor BatchNorm2d::forward_add_relu(const Tensor& x, const Tensor& residual) {
  return scoped(x, [&] {
    return batch_norm2d_add_relu(x, residual, weight, bias, running_mean, running_var, is_training(), momentum, eps,
                                 layout());
  });
}

MaxPool2d::MaxPool2d(int kernel, int stride, int padding) {
  params.kernel_h = params.kernel_w = kernel;
  params.stride_h = params.stride_w = stride;
  params.pad_h = params.pad_w = padding;
}

Tensor MaxPool2d::forward(const Tensor& x) {
  Pool2dParams p = params;
  p.layout = layout();
  return max_pool2d(x, p);
}

Tensor Flatten::forward(const Tensor& x) {
  // Channels last flattens in NCHW order, as PyTorch's flatten of a channels_last tensor, so a linear layer after
  // it sees the same features in either layout (after a 1x1 pool the permute is a view).
  return flatten(layout() == Layout::nhwc && x.dim() == 4 ? to_channels_first(x) : x);
}

Linear::Linear(int in, int out, bool with_bias) : in_features(in), out_features(out) {
  ENGINE_CHECK(in > 0 && out > 0, "Linear(", in, ", ", out, "): sizes must be positive");
  double bound = 1.0 / std::sqrt(static_cast<double>(in));
  weight = Tensor::empty({out, in});
  uniform_(weight, -bound, bound);
  register_parameter("weight", &weight);
  if (with_bias) {
    bias = Tensor::empty({out});
    uniform_(bias, -bound, bound);
    register_parameter("bias", &bias);
  }
}

Sequential::Sequential(std::vector<std::shared_ptr<Module>> layers) {
  for (auto& m : layers) push_back(std::move(m));
}

void Sequential::push_back(std::shared_ptr<Module> m) { register_module(std::to_string(size()), std::move(m)); }

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (auto& [name, m] : children()) y = (*m)(y);
  return y;
}

}  // namespace engine::nn
