// What a model's forward does, recorded from the modules' real forward(): every module call and every op, with
// shapes and multiply-accumulates. It is the one description of an architecture that the summary
// (models/summary.h), the step-memory estimate (models/memory.h) and the benchmarks' layer shapes
// (benchmarks/resnet_shapes.h) read, so a change to a block's forward() reaches all of them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/nn/module.h"
#include "engine/tensor.h"

namespace models {

// begin/end bracket a module call; the others are engine ops. other: an op with no rule of its own (a dtype or
// device copy, scale); flatten is the reshape view of nn::Flatten. batch_norm_add_relu is the fused end of a
// residual block: a batch norm (with its parameters and statistics), the shortcut's add and a ReLU in one op.
enum class TracedOpKind {
  conv2d,
  batch_norm,
  batch_norm_add_relu,
  relu,
  max_pool,
  avg_pool,
  flatten,
  linear,
  add,
  shortcut,
  other,
  begin,
  end
};

struct TracedOp {
  TracedOpKind kind;
  std::string op;  // the engine op as it records itself ("conv2d", "batch_norm2d_relu", "reshape"); "" for begin/end
  // begin/end: the module called; an op: the innermost module whose call it ran in (nullptr: outside any module).
  const engine::nn::Module* module = nullptr;
  engine::Shape in, out;     // an op: its first input and its output; begin/end: the module's input and output
  int64_t macs = 0;          // conv2d and linear: multiply-accumulates of this call
  bool reads_input = false;  // an op whose first input is the traced input (the stem: its input needs no gradient)
};

struct Trace {
  engine::Shape input, output;
  std::vector<TracedOp> ops;  // in forward order
  // Multiply-accumulates of the convolutions and fully connected layers, as the paper counts "FLOPs" (Table 1):
  // BN, ReLU, pooling and additions are not counted.
  int64_t macs() const;
};

// Runs `model`'s forward once on zeros of shape `input` ([N, C, H, W], on the device and in the dtype of its
// parameters) and records it. The forward runs at batch 1 in eval mode without grad, and the trace is relabelled
// to batch N (with_batch): every op of these networks works per example, so shapes and MACs scale with N, and a
// trace of resnet152 at 224x224 costs one batch-1 forward, not a training step. Training modes are restored and
// nothing of the model changes (eval-mode BN does not update its running statistics). Errors are the ops' own
// (a wrong channel count, a kernel larger than its input).
Trace trace_forward(engine::nn::Module& model, const engine::Shape& input);

// The same trace for a batch of n: the first dimension of every activation shape set to n, MACs scaled.
Trace with_batch(const Trace& trace, int64_t n);

}  // namespace models
