#include "models/trace.h"

#include <utility>

#include "engine/autograd.h"

namespace models {

using engine::Shape;
using engine::Tensor;
namespace nn = engine::nn;

namespace {

TracedOpKind kind_of(const std::string& op) {
  if (op == "conv2d") return TracedOpKind::conv2d;
  if (op == "batch_norm2d" || op == "batch_norm2d_relu") return TracedOpKind::batch_norm;
  if (op == "batch_norm2d_add_relu") return TracedOpKind::batch_norm_add_relu;
  if (op == "relu") return TracedOpKind::relu;
  if (op == "max_pool2d") return TracedOpKind::max_pool;
  if (op == "adaptive_avg_pool2d") return TracedOpKind::avg_pool;
  if (op == "reshape") return TracedOpKind::flatten;
  if (op == "linear") return TracedOpKind::linear;
  if (op == "add") return TracedOpKind::add;
  if (op == "shortcut_a") return TracedOpKind::shortcut;
  return TracedOpKind::other;
}

class Recorder : public engine::OpObserver {
 public:
  Recorder(Trace& t, const Tensor& input) : t_(t), input_(input) {}

  void module_begin(const nn::Module& m, const Tensor& in) override {
    stack_.push_back({&m, in.shape()});
    t_.ops.push_back({TracedOpKind::begin, "", &m, in.shape(), in.shape()});
  }
  void module_end(const nn::Module& m, const Tensor& out) override {
    const Shape in = stack_.back().second;
    stack_.pop_back();
    t_.ops.push_back({TracedOpKind::end, "", &m, in, out.shape()});
  }
  void op(const std::string& name, const std::vector<Tensor>& inputs, const Tensor& out) override {
    TracedOp o{kind_of(name), name, stack_.empty() ? nullptr : stack_.back().first, {}, out.shape()};
    if (!inputs.empty() && inputs[0].defined()) o.in = inputs[0].shape();
    o.reads_input = !inputs.empty() && inputs[0].same(input_);
    // conv2d: N*OC*OH*OW outputs, each C*KH*KW products; linear: N*out outputs of in_features products.
    if (o.kind == TracedOpKind::conv2d) o.macs = out.numel() * (inputs[1].numel() / inputs[1].size(0));
    if (o.kind == TracedOpKind::linear) o.macs = out.numel() * inputs[1].size(1);
    t_.ops.push_back(std::move(o));
  }

 private:
  Trace& t_;
  const Tensor& input_;
  std::vector<std::pair<const nn::Module*, Shape>> stack_;
};

// Every module's training flag, in pre-order, so that restoring them in the same order (train() is recursive)
// gives each module its own flag back.
void collect_modes(nn::Module& m, std::vector<std::pair<nn::Module*, bool>>& out) {
  out.emplace_back(&m, m.is_training());
  for (const auto& [name, child] : m.children()) collect_modes(*child, out);
}

struct ModesRestorer {
  std::vector<std::pair<nn::Module*, bool>> modes;
  ~ModesRestorer() {
    for (auto& [m, on] : modes) m->train(on);
  }
};

}  // namespace

int64_t Trace::macs() const {
  int64_t n = 0;
  for (const auto& o : ops) n += o.macs;
  return n;
}

Trace trace_forward(nn::Module& model, const Shape& input) {
  ENGINE_CHECK(input.size() == 4 && input[0] > 0, "trace: the input must be [N, C, H, W] with N > 0, got ",
               engine::shape_str(input));
  engine::DType dtype = engine::DType::f32;
  engine::Device device = engine::Device::cpu();
  const auto params = model.parameters();
  if (!params.empty()) dtype = params[0].dtype(), device = params[0].device();

  Trace t;
  ModesRestorer restore;
  collect_modes(model, restore.modes);
  model.eval();
  {
    engine::NoGradGuard no_grad;
    const Tensor x = Tensor::zeros({1, input[1], input[2], input[3]}, dtype, device);
    Recorder rec(t, x);
    engine::ObserveOpsGuard observe(rec);
    t.input = x.shape();
    t.output = model(x).shape();
  }
  return with_batch(t, input[0]);
}

Trace with_batch(const Trace& trace, int64_t n) {
  ENGINE_CHECK(n > 0, "trace: the batch must be positive, got ", n);
  const int64_t from = trace.input.at(0);
  Trace t = trace;
  auto relabel = [&](Shape& s) {
    if (!s.empty()) s[0] = s[0] / from * n;
  };
  relabel(t.input);
  relabel(t.output);
  for (auto& o : t.ops) {
    relabel(o.in);
    relabel(o.out);
    o.macs = o.macs / from * n;
  }
  return t;
}

}  // namespace models
