// batch_norm2d over NCHW, per channel, as torch.nn.functional.batch_norm:
//  training: normalise with the batch mean and biased variance; update running_mean/var in place with
//            running = (1 - momentum) * running + momentum * batch_stat, using the unbiased variance;
//  eval:     normalise with running_mean/var.
// gamma/beta [C] may be undefined (no affine). Running stats are buffers: updated without autograd.
#pragma once
#include "engine/tensor.h"

namespace engine {

// Which implementation CUDA batch norm uses in training mode. Native (ours) is the default and the reference;
// cuDNN exists only in builds that found it. Eval mode and the CPU always run the native kernels.
enum class BatchNormEngine { native, cudnn };
void set_batch_norm_engine(BatchNormEngine e);  // throws if cuDNN was asked for but not compiled in
BatchNormEngine batch_norm_engine();

Tensor batch_norm2d(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean, Tensor& running_var,
                    bool training, double momentum = 0.1, double eps = 1e-5);

// relu(batch_norm2d(...)) in one op (every conv -> BN -> ReLU of a ResNet): one pass less forward, and backward
// masks the gradient while it reduces instead of a separate ReLU pass. With the cuDNN engine it is the two ops.
Tensor batch_norm2d_relu(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                         Tensor& running_var, bool training, double momentum = 0.1, double eps = 1e-5);

}  // namespace engine
