// The layer shapes a ResNet really sees in one training step, read from a trace of the model's own forward
// (models/trace.h) for a given batch and input size, so they follow models/ by construction. bench_kernels times
// each distinct shape once and multiplies by how often it occurs, which gives a per-op estimate of the full step;
// bench_models uses the FLOP count for the achieved-GFLOP/s column.
#pragma once
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "engine/nn/layers.h"
#include "models/registry.h"
#include "models/trace.h"

namespace bench {

struct ConvShape {
  int64_t n, c, h, w, oc;
  int k, stride, pad;
  bool first = false;  // the stem conv: its input needs no gradient (no backward-data pass)
  int64_t oh() const { return (h + 2 * pad - k) / stride + 1; }
  int64_t ow() const { return (w + 2 * pad - k) / stride + 1; }
  double flops() const { return 2.0 * n * oc * oh() * ow() * c * k * k; }  // one pass (fwd, bwd-data or bwd-weight)
  // The im2col GEMM of the native path: [OC x K] * [K x N*OH*OW].
  int64_t gemm_m() const { return oc; }
  int64_t gemm_n() const { return n * oh() * ow(); }
  int64_t gemm_k() const { return c * k * k; }
  auto key() const { return std::make_tuple(n, c, h, w, oc, k, stride, pad, first); }
};

struct Act {  // an NCHW activation
  int64_t n, c, h, w;
  int64_t numel() const { return n * c * h * w; }
  auto key() const { return std::make_tuple(n, c, h, w); }
};

struct PoolShape {
  Act in;
  int k, stride, pad;
  int64_t oh() const { return (in.h + 2 * pad - k) / stride + 1; }
  int64_t ow() const { return (in.w + 2 * pad - k) / stride + 1; }
};

// Everything in one training step, with repeats (a shape that occurs twice is listed twice).
struct NetShapes {
  std::string model;
  std::vector<ConvShape> convs;
  std::vector<Act> bns;    // one batch norm after every conv
  std::vector<Act> relus;  // forward relus (backward: same count)
  std::vector<Act> adds;   // residual joins (forward) and gradient accumulations at block inputs (backward)
  std::vector<PoolShape> maxpools;
  Act avgpool_in{0, 0, 0, 0};
  int64_t fc_in = 0, classes = 10, batch = 0;
  int64_t params = 0;  // elements updated by SGD: the model's parameters

  // Forward multiply-add FLOPs (conv + linear); a training step is about 3x (fwd, bwd-data, bwd-weight),
  // less the stem's backward-data, which nobody computes.
  double forward_flops() const {
    double f = 2.0 * batch * fc_in * classes;
    for (const auto& c : convs) f += c.flops();
    return f;
  }
  double step_flops() const {
    double f = 3.0 * (2.0 * batch * fc_in * classes);
    for (const auto& c : convs) f += (c.first ? 2.0 : 3.0) * c.flops();
    return f;
  }
};

inline bool is_imagenet_resnet(const std::string& m) {
  return m == "resnet18" || m == "resnet34" || m == "resnet50" || m == "resnet101" || m == "resnet152";
}

// The shapes of one step of `model` at a batch of `batch` images of in_channels x res x res.
inline NetShapes net_shapes(engine::nn::Module& model, int64_t batch, int64_t res, int64_t in_channels = 1) {
  const models::Trace t = models::trace_forward(model, {batch, in_channels, res, res});
  NetShapes s;
  s.batch = batch;
  s.params = model.num_parameters();
  auto act = [](const engine::Shape& x) { return Act{x[0], x[1], x[2], x[3]}; };
  for (const models::TracedOp& o : t.ops) {
    switch (o.kind) {
      case models::TracedOpKind::conv2d: {
        const auto& c = dynamic_cast<const engine::nn::Conv2d&>(*o.module);
        s.convs.push_back({o.in[0], o.in[1], o.in[2], o.in[3], o.out[1], c.kernel, c.stride, c.padding, o.reads_input});
        break;
      }
      case models::TracedOpKind::batch_norm:
        s.bns.push_back(act(o.out));
        if (o.op == "batch_norm2d_relu") s.relus.push_back(act(o.out));  // fused: timed as BN and ReLU kernels
        break;
      case models::TracedOpKind::batch_norm_add_relu:  // fused: timed as BN, add and ReLU kernels
        s.bns.push_back(act(o.out));
        s.adds.push_back(act(o.out));
        s.relus.push_back(act(o.out));
        break;
      case models::TracedOpKind::relu:
        s.relus.push_back(act(o.out));
        break;
      case models::TracedOpKind::add:
        s.adds.push_back(act(o.out));
        break;
      case models::TracedOpKind::max_pool: {
        const auto& p = dynamic_cast<const engine::nn::MaxPool2d&>(*o.module).params;
        s.maxpools.push_back({act(o.in), p.kernel_h, p.stride_h, p.pad_h});
        break;
      }
      case models::TracedOpKind::avg_pool:
        s.avgpool_in = act(o.in);
        break;
      case models::TracedOpKind::linear:
        s.fc_in = o.in[1];
        s.classes = o.out[1];
        break;
      default:  // begin/end, the flatten view, option A's shortcut (no kernel of its own here)
        break;
    }
  }
  return s;
}

// The registry's model of that name (one input channel by default, `classes` outputs).
inline NetShapes net_shapes(const std::string& model, int64_t batch, int64_t res, int64_t in_channels = 1,
                            int64_t classes = 10) {
  models::ModelConfig cfg;
  cfg.in_channels = static_cast<int>(in_channels);
  cfg.num_classes = static_cast<int>(classes);
  auto m = models::create(model, cfg);
  NetShapes s = net_shapes(*m, batch, res, in_channels);
  s.model = model;
  return s;
}

// Distinct shapes with their multiplicity, in first-seen order.
template <class T>
std::vector<std::pair<T, int>> distinct(const std::vector<T>& items) {
  std::vector<std::pair<T, int>> out;
  for (const auto& it : items) {
    bool found = false;
    for (auto& o : out)
      if (o.first.key() == it.key()) {
        ++o.second;
        found = true;
        break;
      }
    if (!found) out.push_back({it, 1});
  }
  return out;
}

}  // namespace bench
