// Elementwise ops: add (the residual join), scale, relu. Same shape, dtype and device; no broadcasting.
#pragma once
#include "engine/tensor.h"

namespace engine {

Tensor add(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& x, double alpha);
Tensor relu(const Tensor& x);
// Flattens all but the first dimension: [N, ...] -> [N, prod(...)], a view.
Tensor flatten(const Tensor& x);

}  // namespace engine
