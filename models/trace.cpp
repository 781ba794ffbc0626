#include "models/trace.h"

#include "engine/nn/layers.h"

namespace models {

using engine::Shape;
using engine::shape_str;
namespace nn = engine::nn;

namespace {

int64_t out_size(int64_t in, int kernel, int stride, int pad) { return (in + 2 * pad - kernel) / stride + 1; }

void check_4d(const char* what, const Shape& in) {
  ENGINE_CHECK(in.size() == 4, "trace: ", what, " expects an [N, C, H, W] input, got ", shape_str(in));
}

}  // namespace

Shape trace(const nn::Module& m, const Shape& in, Cost& cost) {
  if (auto* t = dynamic_cast<const Traceable*>(&m)) {
    cost.report(TracedOpKind::begin, m, in, in);
    Shape out = t->trace(in, cost);
    cost.report(TracedOpKind::end, m, in, out);
    return out;
  }
  if (auto* c = dynamic_cast<const nn::Conv2d*>(&m)) {
    check_4d("Conv2d", in);
    ENGINE_CHECK(in[1] == c->in_channels, "trace: Conv2d expects ", c->in_channels, " input channels, got ",
                 shape_str(in));
    const int64_t oh = out_size(in[2], c->kernel, c->stride, c->padding);
    const int64_t ow = out_size(in[3], c->kernel, c->stride, c->padding);
    ENGINE_CHECK(oh > 0 && ow > 0, "trace: Conv2d kernel ", c->kernel, " does not fit input ", shape_str(in));
    cost.macs += in[0] * c->out_channels * oh * ow * int64_t{c->in_channels} * c->kernel * c->kernel;
    const Shape out{in[0], c->out_channels, oh, ow};
    cost.report(TracedOpKind::conv2d, m, in, out);
    return out;
  }
  if (auto* bn = dynamic_cast<const nn::BatchNorm2d*>(&m)) {
    check_4d("BatchNorm2d", in);
    ENGINE_CHECK(in[1] == bn->channels, "trace: BatchNorm2d expects ", bn->channels, " channels, got ", shape_str(in));
    cost.report(TracedOpKind::batch_norm, m, in, in);
    return in;
  }
  if (dynamic_cast<const nn::ReLU*>(&m)) {
    cost.report(TracedOpKind::relu, m, in, in);
    return in;
  }
  if (auto* p = dynamic_cast<const nn::MaxPool2d*>(&m)) {
    check_4d("MaxPool2d", in);
    const auto& q = p->params;
    const int64_t oh = out_size(in[2], q.kernel_h, q.stride_h, q.pad_h);
    const int64_t ow = out_size(in[3], q.kernel_w, q.stride_w, q.pad_w);
    ENGINE_CHECK(oh > 0 && ow > 0, "trace: MaxPool2d window does not fit input ", shape_str(in));
    const Shape out{in[0], in[1], oh, ow};
    cost.report(TracedOpKind::max_pool, m, in, out);
    return out;
  }
  if (auto* a = dynamic_cast<const nn::AdaptiveAvgPool2d*>(&m)) {
    check_4d("AdaptiveAvgPool2d", in);
    const Shape out{in[0], in[1], a->out_h, a->out_w};
    cost.report(TracedOpKind::avg_pool, m, in, out);
    return out;
  }
  if (dynamic_cast<const nn::Flatten*>(&m)) {
    ENGINE_CHECK(!in.empty(), "trace: Flatten needs at least one dimension");
    const Shape out{in[0], engine::numel_of(in) / in[0]};
    cost.report(TracedOpKind::flatten, m, in, out);
    return out;
  }
  if (auto* l = dynamic_cast<const nn::Linear*>(&m)) {
    ENGINE_CHECK(in.size() == 2 && in[1] == l->in_features, "trace: Linear expects [N, ", l->in_features, "], got ",
                 shape_str(in));
    cost.macs += in[0] * int64_t{l->in_features} * l->out_features;
    const Shape out{in[0], l->out_features};
    cost.report(TracedOpKind::linear, m, in, out);
    return out;
  }
  if (dynamic_cast<const nn::Sequential*>(&m)) {
    Shape s = in;
    for (const auto& [name, child] : m.children()) s = trace(*child, s, cost);
    return s;
  }
  engine::fail("trace: no shape rule for this module type; implement models::Traceable next to its forward()");
}

}  // namespace models
