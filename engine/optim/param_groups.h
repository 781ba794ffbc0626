// Parameter groups for weight decay. --no-wd-bn takes every BatchNorm weight and bias and every bias out of the
// decay, as timm's param_groups_weight_decay (1-d parameters and biases) and torchvision's reference recipe
// (--norm-weight-decay 0.0, --bias-weight-decay 0.0) do: decaying BN's scale and shift only fights the
// normalisation, and biases are too few to overfit.
#pragma once
#include <vector>

#include "engine/nn/module.h"
#include "engine/optim/sgd.h"

namespace engine::optim {

struct DecaySplit {
  nn::NamedTensors decay, no_decay;  // each in named_parameters() order
};

// no_decay: the parameters of every nn::BatchNorm2d and every parameter named "bias"; decay: the rest.
DecaySplit split_weight_decay(const nn::Module& model);

// One group of all parameters with `weight_decay`, or with `no_decay_bn_bias` two: the decayed ones with
// `weight_decay`, then the BN and bias parameters with 0.
std::vector<ParamGroup> weight_decay_groups(const nn::Module& model, double weight_decay, bool no_decay_bn_bias);

}  // namespace engine::optim
