#include "models/resnet.h"

#include <cmath>

#include "engine/random.h"

namespace models {

using engine::Tensor;
namespace nn = engine::nn;

namespace {

void init_rec(nn::Module& m, bool redraw, bool zero_init_residual);

void check_config(const std::string& name, const ModelConfig& cfg) {
  ENGINE_CHECK(cfg.in_channels > 0 && cfg.num_classes > 0, name, ": in_channels (", cfg.in_channels,
               ") and num_classes (", cfg.num_classes, ") must be positive");
}

// One stage: the first block changes stride/width, the rest keep the shape.
std::shared_ptr<nn::Sequential> make_stage(BlockType type, int& in_channels, int planes, int blocks, int stride,
                                           ShortcutKind kind, bool stride_on_first_1x1) {
  auto stage = std::make_shared<nn::Sequential>();
  for (int b = 0; b < blocks; ++b) {
    const int s = b == 0 ? stride : 1;
    if (type == BlockType::basic) {
      stage->push_back(std::make_shared<BasicBlock>(in_channels, planes, s, kind));
      in_channels = planes * BasicBlock::expansion;
    } else {
      stage->push_back(std::make_shared<Bottleneck>(in_channels, planes, s, kind, stride_on_first_1x1));
      in_channels = planes * Bottleneck::expansion;
    }
  }
  return stage;
}

}  // namespace

std::shared_ptr<Network> imagenet_resnet(const std::string& name, const ResNetSpec& spec, const ModelConfig& cfg) {
  check_config(name, cfg);
  ENGINE_CHECK(!spec.blocks_per_stage.empty(), name, ": needs at least one stage");
  auto net = std::make_shared<Network>(name);
  net->add("conv1", make_conv(cfg.in_channels, 64, 7, 2, 3));
  net->add("bn1", std::make_shared<nn::BatchNorm2d>(64));
  net->add("relu", std::make_shared<nn::ReLU>());
  net->add("maxpool", std::make_shared<nn::MaxPool2d>(3, 2, 1));
  int channels = 64, planes = 64;
  for (size_t i = 0; i < spec.blocks_per_stage.size(); ++i, planes *= 2) {
    ENGINE_CHECK(spec.blocks_per_stage[i] > 0, name, ": stage ", i + 1, " has no blocks");
    net->add("layer" + std::to_string(i + 1),
             make_stage(spec.block, channels, planes, spec.blocks_per_stage[i], i == 0 ? 1 : 2,
                        ShortcutKind::projection, cfg.stride_on_first_1x1));
  }
  net->add("avgpool", std::make_shared<nn::AdaptiveAvgPool2d>(1, 1));
  net->add("flatten", std::make_shared<nn::Flatten>());
  net->add("fc", std::make_shared<nn::Linear>(channels, cfg.num_classes));
  init_rec(*net, /*redraw=*/false, cfg.zero_init_residual);  // convs, BN and fc were initialised when built
  return net;
}

std::shared_ptr<Network> cifar_resnet(const std::string& name, int n, bool plain, const ModelConfig& cfg) {
  check_config(name, cfg);
  ENGINE_CHECK(n > 0, name, ": needs n >= 1 blocks per stage (depth 6n+2)");
  auto net = std::make_shared<Network>(name);
  net->add("conv1", make_conv(cfg.in_channels, 16, 3, 1, 1));
  net->add("bn1", std::make_shared<nn::BatchNorm2d>(16));
  net->add("relu", std::make_shared<nn::ReLU>());
  const ShortcutKind kind = plain ? ShortcutKind::none : ShortcutKind::zero_pad;
  int channels = 16;
  const int widths[3] = {16, 32, 64};
  for (int i = 0; i < 3; ++i)
    net->add("layer" + std::to_string(i + 1),
             make_stage(BlockType::basic, channels, widths[i], n, i == 0 ? 1 : 2, kind, false));
  net->add("avgpool", std::make_shared<nn::AdaptiveAvgPool2d>(1, 1));
  net->add("flatten", std::make_shared<nn::Flatten>());
  net->add("fc", std::make_shared<nn::Linear>(channels, cfg.num_classes));
  init_rec(*net, /*redraw=*/false, cfg.zero_init_residual);  // convs, BN and fc were initialised when built
  return net;
}

namespace {
void init_rec(nn::Module& m, bool redraw, bool zero_init_residual) {
  if (auto* conv = dynamic_cast<nn::Conv2d*>(&m); conv && redraw) {
    he_init(*conv);
  } else if (auto* bn = dynamic_cast<nn::BatchNorm2d*>(&m); bn && redraw) {
    bn->weight.fill_(1.0);
    bn->bias.fill_(0.0);
  } else if (auto* fc = dynamic_cast<nn::Linear*>(&m); fc && redraw) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(fc->in_features));
    engine::uniform_(fc->weight, -bound, bound);
    if (fc->bias.defined()) engine::uniform_(fc->bias, -bound, bound);
  }
  for (auto& [child_name, child] : m.children()) init_rec(*child, redraw, zero_init_residual);
  // After the children, so the zero is not overwritten by the BN rule above.
  if (auto* block = dynamic_cast<ResidualBlock*>(&m); block && zero_init_residual && block->kind != ShortcutKind::none)
    block->last_bn().weight.fill_(0.0);
}
}  // namespace

void init_weights(nn::Module& model, bool zero_init_residual) { init_rec(model, true, zero_init_residual); }

}  // namespace models
