// batch_norm2d over NCHW, per channel, as torch.nn.functional.batch_norm:
//  training: normalise with the batch mean and biased variance; update running_mean/var in place with
//            running = (1 - momentum) * running + momentum * batch_stat, using the unbiased variance;
//  eval:     normalise with running_mean/var.
// gamma/beta [C] may be undefined (no affine). Running stats are buffers: updated without autograd.
#pragma once
#include "engine/tensor.h"

namespace engine {

Tensor batch_norm2d(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                    Tensor& running_var, bool training, double momentum = 0.1, double eps = 1e-5);

}  // namespace engine
