// cross_entropy: logits [N, C] (float), labels [N] (int32, values in [0, C)) -> scalar mean loss, as
// torch.nn.functional.cross_entropy with label_smoothing: target = (1 - eps) * onehot + eps / C.
// Softmax is computed stably (max subtracted); the gradient (softmax - target) / N is fused in the kernel.
#pragma once
#include "engine/tensor.h"

namespace engine {

Tensor cross_entropy(const Tensor& logits, const Tensor& labels, double label_smoothing = 0.0);

}  // namespace engine
