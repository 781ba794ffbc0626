// linear: x [N, in] @ weight[out, in]^T + bias[out] -> [N, out] (bias optional), as torch.nn.functional.linear.
#pragma once
#include "engine/tensor.h"

namespace engine {

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);

}  // namespace engine
