// Every model is built by name from here: resnet18/34/50/101/152 (ImageNet-style, Table 1 of He et al. 2016),
// resnet20/32/44/56/110 (CIFAR-style, option-A shortcuts) and plain20/32/44/56/110 (the same without shortcuts).
// Parameter names follow torchvision's state_dict ("layer1.0.conv1.weight"); see docs/models.md.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "engine/nn/module.h"

namespace models {

struct ModelConfig {
  int in_channels = 1;  // 1 for Fashion-MNIST, 3 for ImageNet/CIFAR
  int num_classes = 10;
  // Zero the last BN gamma of each residual block so that it starts as the identity (Goyal et al. 2017;
  // torchvision's zero_init_residual). Plain nets have no residual blocks and ignore it.
  bool zero_init_residual = false;
  // Bottleneck nets (resnet50/101/152) only: down-sample in the first 1x1 conv (the paper, "ResNet v1", true)
  // or in the 3x3 conv (torchvision, "ResNet v1.5", false: the default, so results and weights compare with
  // PyTorch's). Parameter shapes and names are the same either way; only strides and MACs differ.
  bool stride_on_first_1x1 = false;
};

// Builds and initialises (He normal, see models/resnet.h) the named model; unknown names throw listing the
// valid ones. Random draws come from engine::default_generator(), which apps seed.
std::shared_ptr<engine::nn::Module> create(const std::string& name, const ModelConfig& cfg = {});
std::vector<std::string> names();  // all registered names, in a stable order

}  // namespace models
