// Every model is built by name from here: resnet18/34/50/101/152 (ImageNet-style, Table 1 of He et al. 2016),
// resnet20/32/44/56/110 (CIFAR-style, option-A shortcuts) and plain20/32/44/56/110 (the same without shortcuts).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "engine/nn/module.h"

namespace models {

struct ModelConfig {
  int in_channels = 1;       // 1 for Fashion-MNIST, 3 for ImageNet/CIFAR
  int num_classes = 10;
  bool zero_init_residual = false;  // zero the last BN gamma of each residual block
  // Bottleneck down-sampling stride on the first 1x1 (the paper's, true) or on the 3x3 (torchvision's, false).
  bool stride_on_first_1x1 = false;
};

std::shared_ptr<engine::nn::Module> create(const std::string& name, const ModelConfig& cfg = {});
std::vector<std::string> names();  // all registered names, in a stable order

}  // namespace models
