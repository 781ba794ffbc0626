// The layer shapes a ResNet really sees in one training step, derived from the architecture (He et al. 2016,
// Table 1; torchvision layout: stride on the 3x3 of a bottleneck) for a given batch and input size. bench_kernels
// times each distinct shape once and multiplies by how often it occurs, which gives a per-op estimate of the full
// step; bench_models uses the FLOP count for the achieved-GFLOP/s column. Kept in sync with models/ by hand: the
// same stage counts and widths as the registry (see models/registry.h).
#pragma once
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

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
  int64_t params = 0;  // elements updated by SGD

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

namespace detail {
struct Builder {
  NetShapes s;
  Act cur;
  void conv_bn(int64_t oc, int k, int stride, int pad, bool relu, bool first = false) {
    ConvShape c{cur.n, cur.c, cur.h, cur.w, oc, k, stride, pad, first};
    s.convs.push_back(c);
    s.params += oc * cur.c * k * k + 2 * oc;  // conv weight (no bias) + BN gamma, beta
    cur = {cur.n, oc, c.oh(), c.ow()};
    s.bns.push_back(cur);
    if (relu) s.relus.push_back(cur);
  }
};
}  // namespace detail

inline bool is_imagenet_resnet(const std::string& m) {
  return m == "resnet18" || m == "resnet34" || m == "resnet50" || m == "resnet101" || m == "resnet152";
}

// ImageNet-style ResNets (resnet18..152) and the CIFAR family (resnet20/32/44/56/110, plain20..110).
inline NetShapes net_shapes(const std::string& model, int64_t batch, int64_t res, int64_t in_channels = 1,
                            int64_t classes = 10) {
  detail::Builder b;
  b.s.model = model;
  b.s.batch = batch;
  b.s.classes = classes;
  b.cur = {batch, in_channels, res, res};
  if (is_imagenet_resnet(model)) {
    static const std::map<std::string, std::pair<bool, std::vector<int>>> cfg = {{"resnet18", {false, {2, 2, 2, 2}}},
                                                                                 {"resnet34", {false, {3, 4, 6, 3}}},
                                                                                 {"resnet50", {true, {3, 4, 6, 3}}},
                                                                                 {"resnet101", {true, {3, 4, 23, 3}}},
                                                                                 {"resnet152", {true, {3, 8, 36, 3}}}};
    const bool bottleneck = cfg.at(model).first;
    const auto& blocks = cfg.at(model).second;
    b.conv_bn(64, 7, 2, 3, true, /*first=*/true);
    PoolShape mp{b.cur, 3, 2, 1};
    b.s.maxpools.push_back(mp);
    b.cur = {b.cur.n, b.cur.c, mp.oh(), mp.ow()};
    const int expansion = bottleneck ? 4 : 1;
    for (int stage = 0; stage < 4; ++stage) {
      const int64_t width = 64 << stage;
      for (int i = 0; i < blocks[stage]; ++i) {
        const int stride = (stage > 0 && i == 0) ? 2 : 1;
        const Act in = b.cur;
        const bool downsample = stride != 1 || in.c != width * expansion;
        if (bottleneck) {
          b.conv_bn(width, 1, 1, 0, true);
          b.conv_bn(width, 3, stride, 1, true);
          b.conv_bn(width * expansion, 1, 1, 0, false);
        } else {
          b.conv_bn(width, 3, stride, 1, true);
          b.conv_bn(width, 3, 1, 1, false);
        }
        const Act out = b.cur;
        if (downsample) {
          b.cur = in;
          b.conv_bn(width * expansion, 1, stride, 0, false);
          b.cur = out;
        }
        b.s.adds.push_back(out);
        b.s.relus.push_back(out);
      }
    }
  } else {
    const bool plain = model.rfind("plain", 0) == 0;
    const std::string digits = model.substr(plain ? 5 : 6);
    if ((!plain && model.rfind("resnet", 0) != 0) || digits.empty() ||
        digits.find_first_not_of("0123456789") != std::string::npos)
      throw std::runtime_error("net_shapes: unknown model '" + model + "'");
    const int depth = std::stoi(digits);
    if ((depth - 2) % 6 != 0) throw std::runtime_error("net_shapes: CIFAR depth must be 6n+2, got " + model);
    const int n = (depth - 2) / 6;
    b.conv_bn(16, 3, 1, 1, true, /*first=*/true);
    for (int stage = 0; stage < 3; ++stage) {
      const int64_t width = 16 << stage;
      for (int i = 0; i < n; ++i) {
        const int stride = (stage > 0 && i == 0) ? 2 : 1;
        b.conv_bn(width, 3, stride, 1, true);
        b.conv_bn(width, 3, 1, 1, false);
        if (!plain) b.s.adds.push_back(b.cur);  // option A: strided identity + zero channels, no conv
        b.s.relus.push_back(b.cur);
      }
    }
  }
  b.s.avgpool_in = b.cur;
  b.s.fc_in = b.cur.c;
  b.s.params += b.s.fc_in * classes + classes;
  return b.s;
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
