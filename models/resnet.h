// The networks of He et al. 2016, built from a runtime description (block type + blocks per stage):
//   ImageNet-style (Table 1): conv1 7x7/2 (no bias) bn1 relu maxpool 3x3/2 (pad 1), layer1..layer4, avgpool,
//     flatten, fc.
//     Stage widths 64/128/256/512 (x4 for bottlenecks); layer2..4 down-sample in their first block.
//   CIFAR-style (Sec. 4.2, 6n+2 layers): conv1 3x3 (16 filters, no bias) bn1 relu, layer1..layer3 of n basic
//     blocks with 16/32/64 filters (layer2/3 down-sample in their first block), avgpool, fc. Residual nets use
//     option-A (zero-padding) shortcuts; plain nets have none. avgpool, flatten, fc as above.
// Child and parameter names follow torchvision's ResNet, so state_dicts cross to PyTorch by name.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/nn/layers.h"
#include "models/blocks.h"
#include "models/registry.h"

namespace models {

// A chain of named children run in order (Sequential's forward, with torchvision's names instead of 0, 1, ...).
// The flatten before fc (torchvision's `torch.flatten(x, 1)`) is a child of its own, an nn::Flatten without
// parameters, so the state_dict names stay torchvision's.
class Network : public engine::nn::Sequential {
 public:
  explicit Network(std::string name) : name(std::move(name)) {}
  void add(const std::string& child_name, std::shared_ptr<engine::nn::Module> m) {
    register_module(child_name, std::move(m));
  }
  std::string name;  // the registry name, e.g. "resnet50"
};

enum class BlockType { basic, bottleneck };

struct ResNetSpec {
  BlockType block = BlockType::basic;
  std::vector<int> blocks_per_stage;  // {2,2,2,2} for ResNet-18 ...
};

// ImageNet-style ResNet (any stage counts; four stages for Table 1's nets).
std::shared_ptr<Network> imagenet_resnet(const std::string& name, const ResNetSpec& spec, const ModelConfig& cfg);
// CIFAR-style net with 6n+2 layers; plain = true drops every shortcut.
std::shared_ptr<Network> cifar_resnet(const std::string& name, int n, bool plain, const ModelConfig& cfg);

// The networks come initialised as torchvision's ResNet: every conv weight ~ N(0, 2 / fan_out) with
// fan_out = out_channels * k * k (He et al. 2015, make_conv in blocks.h); BatchNorm gamma 1, beta 0; fc as
// torch.nn.Linear's default, U(-1/sqrt(in), 1/sqrt(in)) for weight and bias; with cfg.zero_init_residual, each
// residual block's last BN gamma is 0, so every block starts as the identity.
// init_weights re-draws all of that for any module tree (from engine::default_generator()).
void init_weights(engine::nn::Module& model, bool zero_init_residual);

}  // namespace models
