// conv2d: NCHW input [N, C, H, W], weight [OC, C, KH, KW], optional bias [OC] -> [N, OC, OH, OW] with
// OH = (H + 2*pad_h - KH) / stride_h + 1. Native path: im2col over the batch + one GEMM (OpenBLAS / cuBLAS).
#pragma once
#include <string>

#include "engine/tensor.h"

namespace engine {

struct Conv2dParams {
  int stride_h = 1, stride_w = 1;
  int pad_h = 0, pad_w = 0;
};

// Which implementation CUDA convolutions use. Native (ours) is the default and the reference; cuDNN is
// optional and only exists in builds that found cuDNN. `fastest` (cuDNN builds only) times both on the first
// call of each shape, direction, dtype and TF32 setting (as cudnn.benchmark times cuDNN's own algorithms) and
// then always runs the faster; the choice is cached for the process. The CPU always runs the native path.
enum class ConvEngine { native, cudnn, fastest };
void set_conv_engine(ConvEngine e);  // throws if cuDNN was asked for but not compiled in
ConvEngine conv_engine();
bool cudnn_compiled();
ConvEngine parse_conv_engine(const std::string& name);  // "native", "cudnn", "fastest"; throws on others

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dParams& p);

}  // namespace engine
