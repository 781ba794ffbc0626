#include "models/summary.h"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>

#include "engine/nn/layers.h"
#include "models/memory.h"
#include "models/resnet.h"
#include "models/trace.h"

namespace models {

using engine::Shape;
namespace nn = engine::nn;

namespace {

// Emits rows for `m` (named `name`) fed with `in`; returns its output shape. Chains (Network, Sequential) are
// opened while depth allows, otherwise the module is one row.
Shape emit(const nn::Module& m, const std::string& name, const Shape& in, int depth, Summary& out) {
  const bool is_network = dynamic_cast<const Network*>(&m) != nullptr;
  const bool is_chain = is_network || dynamic_cast<const nn::Sequential*>(&m) != nullptr;
  if (is_chain && depth > 0) {
    Shape s = in;
    for (const auto& [child_name, child] : m.children()) {
      if (is_network && dynamic_cast<const nn::Linear*>(child.get()) && s.size() > 2)
        s = {s[0], engine::numel_of(s) / s[0]};  // Network::forward flattens before fc
      s = emit(*child, name.empty() ? child_name : name + "." + child_name, s, depth - 1, out);
    }
    return s;
  }
  Cost cost;
  SummaryRow row;
  row.name = name.empty() ? "(model)" : name;
  row.output = trace(m, in, cost);
  row.params = m.num_parameters();
  row.macs = cost.macs;
  out.rows.push_back(row);
  return row.output;
}

}  // namespace

std::string with_commas(int64_t v) {
  std::string digits = std::to_string(v < 0 ? -v : v), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return v < 0 ? "-" + out : out;
}

Summary summarize(const nn::Module& model, const Shape& input, int depth) {
  ENGINE_CHECK(input.size() == 3 || input.size() == 4, "summarize: input must be [C, H, W] or [N, C, H, W], got ",
               engine::shape_str(input));
  ENGINE_CHECK(depth >= 1, "summarize: depth must be >= 1, got ", depth);
  Summary s;
  s.input = input.size() == 3 ? Shape{1, input[0], input[1], input[2]} : input;
  s.output = emit(model, "", s.input, depth, s);
  for (const auto& r : s.rows) s.total_macs += r.macs;
  s.total_params = model.num_parameters();
  // Each op of the step belongs to the row whose name is its module's or a prefix of it ("layer1" holds
  // "layer1.0.conv1" and the block "layer1.0"'s join).
  if (s.output.size() != 2) return s;  // not a classifier: no training step to model
  StepSpec spec;
  spec.input = s.input;
  const MemoryEstimate m = estimate_step_memory(model, spec);
  for (const auto& op : m.ops)
    for (auto& r : s.rows)
      if (op.name == r.name || op.name.compare(0, r.name.size() + 1, r.name + ".") == 0 || r.name == "(model)") {
        r.activation_bytes += op.saved_bytes;
        break;
      }
  s.total_activation_bytes = m.activations;
  s.step_peak_bytes = m.peak;
  return s;
}

std::string format_summary(const Summary& s, const std::string& title) {
  size_t wn = 5, ws = 12;
  for (const auto& r : s.rows) {
    wn = std::max(wn, r.name.size());
    ws = std::max(ws, engine::shape_str(r.output).size());
  }
  const size_t wp = 12, wm = 16, wa = 12;
  const size_t rule = wn + ws + wp + wm + wa + 8;
  std::string out = fmt::format("{}, input {}\n", title, engine::shape_str(s.input));
  auto row = [&](const std::string& name, const std::string& shape, const std::string& params, const std::string& macs,
                 const std::string& activations) {
    fmt::format_to(std::back_inserter(out), "{:<{}}  {:<{}}  {:>{}}  {:>{}}  {:>{}}\n", name, wn, shape, ws, params, wp,
                   macs, wm, activations, wa);
  };
  row("layer", "output shape", "params", "mult-adds", "activations");
  out += std::string(rule, '-') + "\n";
  for (const auto& r : s.rows)
    row(r.name, engine::shape_str(r.output), with_commas(r.params), with_commas(r.macs),
        format_bytes(r.activation_bytes));
  out += std::string(rule, '-') + "\n";
  row("total", engine::shape_str(s.output), with_commas(s.total_params), with_commas(s.total_macs),
      format_bytes(s.total_activation_bytes));
  fmt::format_to(std::back_inserter(out), "parameters {:.2f} M, mult-adds {:.2f} G (convs and fc, for a batch of {})\n",
                 static_cast<double>(s.total_params) / 1e6, static_cast<double>(s.total_macs) / 1e9, s.input[0]);
  if (s.step_peak_bytes > 0)
    fmt::format_to(std::back_inserter(out),
                   "activations saved for backward (float32, the loss's included): {} per example, {} for the batch "
                   "of {}; a CPU training step with SGD momentum peaks near {}\n",
                   format_bytes(s.total_activation_bytes / s.input[0]), format_bytes(s.total_activation_bytes),
                   s.input[0], format_bytes(s.step_peak_bytes));
  return out;
}

}  // namespace models
