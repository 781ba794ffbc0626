// shortcut_a: the parameter-free "option A" shortcut of He et al. 2016 (Sec. 4.2, the CIFAR-10 nets).
// x [N, C, H, W] -> [N, out_channels, ceil(H/stride), ceil(W/stride)]: every stride-th pixel of x
// (x[:, :, ::stride, ::stride] in PyTorch), with x's channels placed at [pad_front, pad_front + C) and zeros
// elsewhere. It matches a 3x3 conv with padding 1 and the same stride in output size, so it can join a
// residual branch that changes the shape. Differentiable in x.
#pragma once
#include "engine/tensor.h"

namespace engine {

Tensor shortcut_a(const Tensor& x, int out_channels, int stride, int pad_front);

}  // namespace engine
