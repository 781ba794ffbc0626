// Pooling over NCHW.
//  max_pool2d: windows of kernel x kernel with stride and padding (padding counts as -inf), argmax saved for
//              backward; output (H + 2p - k) / s + 1 (floor mode, as PyTorch's default).
//  adaptive_avg_pool2d: output [N, C, OH, OW]; window i spans [floor(i*H/OH), ceil((i+1)*H/OH)), as PyTorch.
#pragma once
#include "engine/tensor.h"

namespace engine {

struct Pool2dParams {
  int kernel_h = 2, kernel_w = 2;
  int stride_h = 2, stride_w = 2;
  int pad_h = 0, pad_w = 0;
};

Tensor max_pool2d(const Tensor& x, const Pool2dParams& p);
Tensor adaptive_avg_pool2d(const Tensor& x, int out_h, int out_w);

}  // namespace engine
