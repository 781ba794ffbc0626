// An analytic shape-and-cost pass that mirrors forward() without touching any data: given an input shape it
// returns the output shape and adds up multiply-accumulates. It is what the summary uses, so that counting the
// MACs of resnet152 at 224x224 costs microseconds instead of a multi-second CPU forward; tests check that it
// agrees with real forwards.
#pragma once
#include <cstdint>
#include <functional>

#include "engine/nn/module.h"
#include "engine/tensor.h"

namespace models {

// One op that forward() would run, as the trace passes it. What a step keeps alive depends on each op, not only
// on the shapes, so models/memory.h counts bytes from these. begin/end bracket a Traceable module (a block, a
// network): `in` is its input, `out` (at end) its output. add is a block's residual join: `in` is the block's
// input (its shortcut is added), `out` the sum; shortcut is the zero-padding shortcut_a.
enum class TracedOpKind { conv2d, batch_norm, relu, max_pool, avg_pool, flatten, linear, add, shortcut, begin, end };
struct TracedOp {
  TracedOpKind kind;
  const engine::nn::Module* module;  // the layer, or the block for add, shortcut, begin and end
  engine::Shape in, out;
};

// Multiply-accumulates of the convolutions and fully connected layers, as the paper counts "FLOPs"
// (Table 1): BN, ReLU, pooling and additions are not counted. on_op, when set, sees every op in forward order.
struct Cost {
  int64_t macs = 0;
  std::function<void(const TracedOp&)> on_op;
  void report(TracedOpKind kind, const engine::nn::Module& m, const engine::Shape& in, const engine::Shape& out) const {
    if (on_op) on_op(TracedOp{kind, &m, in, out});
  }
};

// Modules whose forward is not a layer of engine/nn/layers.h (residual blocks, networks) describe their
// shape flow by implementing this next to forward().
class Traceable {
 public:
  virtual ~Traceable() = default;
  virtual engine::Shape trace(const engine::Shape& in, Cost& cost) const = 0;
};

// Output shape of `m` for an input of shape `in` (with the batch dimension), adding its MACs to `cost`.
// Knows Conv2d, BatchNorm2d, ReLU, MaxPool2d, AdaptiveAvgPool2d, Flatten, Linear, Sequential and any
// Traceable; throws for other module types and for shapes the layer's forward would reject.
engine::Shape trace(const engine::nn::Module& m, const engine::Shape& in, Cost& cost);

}  // namespace models
