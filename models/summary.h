// A per-stage table of a model: output shape, parameters, multiply-accumulates (convs + fc, as the paper's
// FLOPs) and the activation memory a training step keeps for backward, from a trace of the model's forward
// (models/trace.h: one batch-1 forward without grad) and the step model of models/memory.h.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/nn/module.h"
#include "engine/tensor.h"

namespace models {

struct SummaryRow {
  std::string name;      // the child's full name: "conv1", "layer3", or "layer3.0" at depth 2
  engine::Shape output;  // with the batch dimension
  int64_t params = 0;
  int64_t macs = 0;              // for the whole batch
  int64_t activation_bytes = 0;  // saved for backward by this row's ops, for the whole batch (float32)
};

struct Summary {
  engine::Shape input, output;
  std::vector<SummaryRow> rows;
  int64_t total_params = 0;
  int64_t total_macs = 0;
  int64_t total_activation_bytes = 0;  // the rows' plus the loss's (its gradient, kept from the forward)
  int64_t step_peak_bytes = 0;         // the estimated peak of a CPU training step with SGD momentum
};

// input: [C, H, W] (a batch of 1 is assumed) or [N, C, H, W]. depth 1 gives one row per top-level child
// (conv1, bn1, relu, maxpool, layer1..4, avgpool, fc); depth 2 splits each stage into its blocks.
Summary summarize(engine::nn::Module& model, const engine::Shape& input, int depth = 1);

// The table as text, with thousands separators and a total line.
std::string format_summary(const Summary& s, const std::string& title);

// 25557032 -> "25,557,032".
std::string with_commas(int64_t v);

}  // namespace models
