#include "models/blocks.h"

#include <cmath>

#include "engine/ops.h"
#include "engine/random.h"

namespace models {

using engine::Tensor;
using engine::nn::BatchNorm2d;
using engine::nn::Conv2d;

std::shared_ptr<Conv2d> make_conv(int in, int out, int kernel, int stride, int padding) {
  auto conv = std::make_shared<Conv2d>(in, out, kernel, stride, padding, /*bias=*/false, /*default_init=*/false);
  he_init(*conv);
  return conv;
}

void he_init(Conv2d& conv) {
  const double fan_out = static_cast<double>(conv.out_channels) * conv.kernel * conv.kernel;
  engine::normal_(conv.weight, 0.0, std::sqrt(2.0 / fan_out));
  if (conv.bias.defined()) conv.bias.fill_(0.0);
}

ResidualBlock::ResidualBlock(int in, int out, int s, ShortcutKind k)
    : in_channels(in), out_channels(out), stride(s), kind(k) {
  ENGINE_CHECK(in > 0 && out > 0 && s >= 1, "residual block: bad sizes (in ", in, ", out ", out, ", stride ", s, ")");
  ENGINE_CHECK(k != ShortcutKind::zero_pad || out >= in, "residual block: a zero-padding shortcut cannot reduce ", in,
               " channels to ", out, "; use a projection shortcut");
}

void ResidualBlock::make_downsample() {
  if (kind != ShortcutKind::projection || !changes_shape()) return;
  downsample = register_module("downsample", std::make_shared<engine::nn::Sequential>());
  downsample->push_back(make_conv(in_channels, out_channels, 1, stride, 0));
  downsample->push_back(std::make_shared<BatchNorm2d>(out_channels));
}

Tensor ResidualBlock::join(const Tensor& main, const Tensor& x) {
  if (kind == ShortcutKind::none) return last_bn().forward_relu(main);
  Tensor sc = x;
  if (changes_shape()) {
    // zero_pad: the padding is split evenly on both sides, as the common PyTorch CIFAR reproductions do.
    sc = kind == ShortcutKind::projection
             ? (*downsample)(x)
             : engine::shortcut_a(x, out_channels, stride, (out_channels - in_channels) / 2, layout());
  }
  return last_bn().forward_add_relu(main, sc);  // relu(last_bn(main) + sc), fused
}

BasicBlock::BasicBlock(int in, int planes, int s, ShortcutKind k) : ResidualBlock(in, planes, s, k) {
  conv1 = register_module("conv1", make_conv(in, planes, 3, s, 1));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(planes));
  conv2 = register_module("conv2", make_conv(planes, planes, 3, 1, 1));
  bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
  make_downsample();
}

Tensor BasicBlock::forward(const Tensor& x) {
  Tensor y = bn1->forward_relu((*conv1)(x));
  return join((*conv2)(y), x);  // bn2, the shortcut and the ReLU
}

Bottleneck::Bottleneck(int in, int planes, int s, ShortcutKind k, bool stride_on_first_1x1)
    : ResidualBlock(in, planes * expansion, s, k) {
  const int s1 = stride_on_first_1x1 ? s : 1, s2 = stride_on_first_1x1 ? 1 : s;
  conv1 = register_module("conv1", make_conv(in, planes, 1, s1, 0));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(planes));
  conv2 = register_module("conv2", make_conv(planes, planes, 3, s2, 1));
  bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
  conv3 = register_module("conv3", make_conv(planes, planes * expansion, 1, 1, 0));
  bn3 = register_module("bn3", std::make_shared<BatchNorm2d>(planes * expansion));
  make_downsample();
}

Tensor Bottleneck::forward(const Tensor& x) {
  Tensor y = bn1->forward_relu((*conv1)(x));
  y = bn2->forward_relu((*conv2)(y));
  return join((*conv3)(y), x);  // bn3, the shortcut and the ReLU
}

}  // namespace models
