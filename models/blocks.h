// Residual blocks of He et al. 2016 with torchvision's child names, so parameter names match its state_dict:
//   BasicBlock:  conv1 (3x3, stride s) bn1 relu conv2 (3x3) bn2, + shortcut, relu           (ResNet-18/34, CIFAR)
//   Bottleneck:  conv1 (1x1) bn1 relu conv2 (3x3) bn2 relu conv3 (1x1, 4x wider) bn3, + shortcut, relu (50/101/152)
// The shortcut is the identity when the shape is kept. When it changes (stride 2 or more channels):
//   ShortcutKind::projection  -> downsample = Sequential(1x1 conv stride s, no bias; BN)  ("option B")
//   ShortcutKind::zero_pad    -> shortcut_a(): x[:, :, ::s, ::s] plus zero channels, no parameters ("option A")
//   ShortcutKind::none        -> no shortcut at all (the "plain" nets of Sec. 4)
#pragma once
#include <memory>
#include <string>

#include "engine/nn/layers.h"

namespace models {

enum class ShortcutKind { projection, zero_pad, none };

// A bias-free conv, as every ResNet conv is, with He et al.'s initialisation (as torchvision's ResNet):
// weight ~ N(0, 2 / fan_out), fan_out = out * kernel * kernel. The weights are drawn once (from
// engine::default_generator()), not first with the layer's default as PyTorch does: that halves the time to
// build resnet152.
std::shared_ptr<engine::nn::Conv2d> make_conv(int in, int out, int kernel, int stride, int padding);
void he_init(engine::nn::Conv2d& conv);

// Base of both blocks: the shortcut branch and the parts the initialiser needs.
class ResidualBlock : public engine::nn::Module {
 public:
  ResidualBlock(int in_channels, int out_channels, int stride, ShortcutKind kind);
  int in_channels, out_channels, stride;
  ShortcutKind kind;
  std::shared_ptr<engine::nn::Sequential> downsample;  // only for a projection that changes the shape

  // The BN whose gamma zero_init_residual zeroes (bn2 in BasicBlock, bn3 in Bottleneck).
  virtual engine::nn::BatchNorm2d& last_bn() = 0;

 protected:
  bool changes_shape() const { return stride != 1 || in_channels != out_channels; }
  void make_downsample();  // registers "downsample" when kind is projection and the shape changes
  // The block's end from main, the last conv's output: relu(last_bn(main) + shortcut(x)) as one fused op
  // (BatchNorm2d::forward_add_relu), or relu(last_bn(main)) without a shortcut.
  engine::Tensor join(const engine::Tensor& main, const engine::Tensor& x);
};

class BasicBlock : public ResidualBlock {
 public:
  static constexpr int expansion = 1;
  BasicBlock(int in_channels, int planes, int stride, ShortcutKind kind);
  engine::Tensor forward(const engine::Tensor& x) override;
  engine::nn::BatchNorm2d& last_bn() override { return *bn2; }
  std::shared_ptr<engine::nn::Conv2d> conv1, conv2;
  std::shared_ptr<engine::nn::BatchNorm2d> bn1, bn2;
};

// stride_on_first_1x1: down-sample in conv1 (the paper, "ResNet v1") or in conv2 (torchvision, "v1.5").
class Bottleneck : public ResidualBlock {
 public:
  static constexpr int expansion = 4;
  Bottleneck(int in_channels, int planes, int stride, ShortcutKind kind, bool stride_on_first_1x1);
  engine::Tensor forward(const engine::Tensor& x) override;
  engine::nn::BatchNorm2d& last_bn() override { return *bn3; }
  std::shared_ptr<engine::nn::Conv2d> conv1, conv2, conv3;
  std::shared_ptr<engine::nn::BatchNorm2d> bn1, bn2, bn3;
};

}  // namespace models
