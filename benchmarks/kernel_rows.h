// The rows of bench_kernels: class Bench times every kernel of a ResNet training step at one layer shape, calls
// the kernels directly through ENGINE_KERNEL (the engine's own dispatch), prints a row per kernel and sums the
// step estimate. Included by benchmarks/bench_kernels.cpp only (every .cpp in benchmarks/ is a program).
#pragma once
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "benchmarks/bench_common.h"
#include "benchmarks/resnet_shapes.h"
#include "engine/ops/common.h"  // ENGINE_KERNEL: the kernel on the benchmark's device
#include "engine/ops.h"
#include "engine/tensor.h"
#include "kernels/batch_norm.h"
#include "kernels/conv.h"
#include "kernels/cross_entropy.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"
#include "kernels/linear.h"
#include "kernels/pool.h"
#include "kernels/relu.h"
#include "kernels/sgd.h"

#if ENGINE_HAVE_CUDA
#include "kernels/cuda/runtime.h"
#endif

namespace bench_kernels {

using engine::Device;
using engine::DType;
using engine::Tensor;

inline bool g_cuda = false;  // --device cuda

// Deterministic values in [lo, hi) filled on the host (fast, unlike normal draws) and copied to the device.
inline Tensor filled(const engine::Shape& shape, Device dev, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  Tensor h = Tensor::empty(shape, DType::f32, Device::cpu());
  float* p = h.data<float>();
  uint32_t s = seed * 2654435761u + 12345u;
  const int64_t n = h.numel();
  for (int64_t i = 0; i < n; ++i) {
    s = s * 1664525u + 1013904223u;
    p[i] = lo + (hi - lo) * static_cast<float>(s >> 8) * (1.0f / 16777216.0f);
  }
  return h.to(dev);
}

struct Options {
  Device dev;
  std::string model;
  int64_t batch = 16, res = 96;
  bench::TimingOptions timing;
  double peak_gflops = 0, peak_gbps = 0;
  std::vector<std::string> ops;  // substrings; empty = all
  bool gemm_rows = true;         // bare-GEMM and im2col/col2im rows beside each convolution
  bool tf32 = false;
};

class Bench {
 public:
  Bench(const Options& o, bench::Output& out, bool json) : o_(o), out_(out), json_(json) {
#if ENGINE_HAVE_CUDA
    if (g_cuda && o.timing.flush) gpu_flush_ = std::make_unique<bench::GpuL2Flusher>();
#endif
    if (!g_cuda && o.timing.flush) cpu_flush_ = std::make_unique<bench::CpuCacheFlusher>(2 * bench::llc_bytes());
  }

  bool wanted(const std::string& op) const {
    if (o_.ops.empty()) return true;
    for (const auto& f : o_.ops)
      if (op.find(f) != std::string::npos) return true;
    return false;
  }

  bench::Stats time(const std::function<void()>& fn) {
    std::function<void()> flush;
#if ENGINE_HAVE_CUDA
    if (gpu_flush_) flush = [this] { gpu_flush_->flush(); };
    if (g_cuda) return bench::stats_of(bench::time_cuda(fn, o_.timing, flush));
#endif
    if (cpu_flush_) flush = [this] { cpu_flush_->flush(); };
    return bench::stats_of(bench::time_cpu(fn, o_.timing, flush));
  }

  // Times fn and prints one row. flops > 0: compute-bound (share of peak FLOP/s); else bytes: share of peak GB/s.
  // step_key (non-empty) adds median x count to that op's share of the step estimate.
  void row(const std::string& op, const std::string& impl, const std::string& shape, int count, double flops,
           double bytes, const std::function<void()>& fn, const std::string& step_key = "",
           const std::function<void(bench::Record&)>& extra = {}) {
    if (!wanted(op)) return;
    const bench::Stats s = time(fn);
    const double sec = s.median / 1e3;
    const double gflops = flops > 0 ? flops / sec / 1e9 : 0;
    const double gbps = bytes > 0 ? bytes / sec / 1e9 : 0;
    const double peak = flops > 0 ? o_.peak_gflops : o_.peak_gbps;  // 0: unknown, no %peak
    bench::Record r;
    r.s("op", op).s("impl", impl).s("shape", shape).i("count", count);
    if (extra) extra(r);
    r.f("ms", s.median, 3).f("ms_min", s.min, 3).f("ms_max", s.max, 3).f("ms_q1", s.q1, 3).f("ms_q3", s.q3, 3);
    r.f("gflops", gflops, 1).f("gbps", gbps, 1);
    if (peak > 0) r.f("pct_peak", 100 * (flops > 0 ? gflops : gbps) / peak, 1);
    r.f("step_ms", s.median * count, 2);
    out_.add(r);
    if (!step_key.empty()) {
      const std::string engine = impl == "cudnn" ? "cudnn" : "native";
      if (std::find(order_.begin(), order_.end(), step_key) == order_.end()) order_.push_back(step_key);
      estimate_[engine][step_key] += s.median * count;
      // Per shape and direction, for the `fastest` engine's estimate (the faster of the two per call).
      auto& b = per_shape_[step_key + " " + shape];
      b.key = step_key, b.count = count;
      (engine == "cudnn" ? b.cudnn_ms : b.native_ms) = s.median;
    }
  }

  // ---------------------------------------------------------------- convolution
  void conv(const bench::ConvShape& cs, int count) {
    kernels::Conv2dShape s;
    s.n = cs.n, s.c = cs.c, s.h = cs.h, s.w = cs.w, s.oc = cs.oc, s.kh = s.kw = cs.k;
    s.stride_h = s.stride_w = cs.stride, s.pad_h = s.pad_w = cs.pad, s.oh = cs.oh(), s.ow = cs.ow();
    const std::string shape = engine::cat(cs.n, "x", cs.c, "x", cs.h, "x", cs.w, " k", cs.k, "s", cs.stride, "p",
                                          cs.pad, " -> ", cs.oc, "x", s.oh, "x", s.ow);
    auto extra = [&](bench::Record& r) {
      r.i("n", cs.n)
          .i("c", cs.c)
          .i("h", cs.h)
          .i("w", cs.w)
          .i("oc", cs.oc)
          .i("k", cs.k)
          .i("stride", cs.stride)
          .i("pad", cs.pad);
    };
    const bool any_conv = wanted("conv_fwd") || wanted("conv_bwd");
    const bool any_gemm = o_.gemm_rows && (wanted("conv_gemm") || wanted("conv_im2col") || wanted("conv_col2im"));
    if (!any_conv && !any_gemm) return;
    Tensor x = filled({s.n, s.c, s.h, s.w}, o_.dev, 1);
    Tensor w = filled({s.oc, s.c, s.kh, s.kw}, o_.dev, 2, -0.1f, 0.1f);
    Tensor y = Tensor::empty({s.n, s.oc, s.oh, s.ow}, DType::f32, o_.dev);
    Tensor gy = filled({s.n, s.oc, s.oh, s.ow}, o_.dev, 3);
    Tensor gx = Tensor::empty({s.n, s.c, s.h, s.w}, DType::f32, o_.dev);
    Tensor gw = Tensor::empty({s.oc, s.c, s.kh, s.kw}, DType::f32, o_.dev);
    const float *px = x.data<float>(), *pw = w.data<float>(), *pgy = gy.data<float>();
    float *py = y.data<float>(), *pgx = gx.data<float>(), *pgw = gw.data<float>();
    const double f = cs.flops();
    // In the step: forward, then one backward call for data and weight (weight only for the stem, whose input
    // needs no gradient).
    row(
        "conv_fwd", "native", shape, count, f, 0,
        [&] { ENGINE_KERNEL("bench_kernels", o_.dev, conv2d_forward<float>, s, px, pw, nullptr, py); }, "conv_fwd",
        extra);
    if (!cs.first)
      row(
          "conv_bwd", "native", shape, count, 2 * f, 0,
          [&] { ENGINE_KERNEL("bench_kernels", o_.dev, conv2d_backward<float>, s, px, pw, pgy, pgx, pgw, nullptr); },
          "conv_bwd", extra);
    if (!cs.first)
      row(
          "conv_bwd_data", "native", shape, count, f, 0,
          [&] {
            ENGINE_KERNEL("bench_kernels", o_.dev, conv2d_backward<float>, s, px, pw, pgy, pgx, nullptr, nullptr);
          },
          "", extra);
    row(
        "conv_bwd_weight", "native", shape, count, f, 0,
        [&] { ENGINE_KERNEL("bench_kernels", o_.dev, conv2d_backward<float>, s, px, pw, pgy, nullptr, pgw, nullptr); },
        cs.first ? "conv_bwd" : "", extra);
#if ENGINE_HAVE_CUDNN
    if (g_cuda) {
      row(
          "conv_fwd", "cudnn", shape, count, f, 0,
          [&] { kernels::cudnn::conv2d_forward<float>(s, px, pw, nullptr, py); }, "conv_fwd", extra);
      if (!cs.first) {
        row(
            "conv_bwd", "cudnn", shape, count, 2 * f, 0,
            [&] { kernels::cudnn::conv2d_backward<float>(s, px, pw, pgy, pgx, pgw, nullptr); }, "conv_bwd", extra);
        row(
            "conv_bwd_data", "cudnn", shape, count, f, 0,
            [&] { kernels::cudnn::conv2d_backward<float>(s, px, pw, pgy, pgx, nullptr, nullptr); }, "", extra);
      }
      row(
          "conv_bwd_weight", "cudnn", shape, count, f, 0,
          [&] { kernels::cudnn::conv2d_backward<float>(s, px, pw, pgy, nullptr, pgw, nullptr); },
          cs.first ? "conv_bwd" : "", extra);
    }
#endif
    if (!any_gemm) return;
    // The GEMMs of the im2col path alone, over the whole batch at once (the conv may split the batch into chunks
    // to bound its scratch). The gap between conv_* and conv_gemm_* is the price of im2col/col2im and permutes.
    const int64_t M = cs.gemm_m(), N = cs.gemm_n(), K = cs.gemm_k();
    Tensor col = filled({K, N}, o_.dev, 4);
    Tensor out = Tensor::empty({M, N}, DType::f32, o_.dev);
    Tensor gyt = filled({M, N}, o_.dev, 5);
    const float* pcol = col.data<float>();
    const float* pgyt = gyt.data<float>();
    float* pout = out.data<float>();
    float* pgcol = col.data<float>();  // bwd-data writes [K, N]: reuse col's storage
    const std::string blas = g_cuda ? "cublas" : "openblas";
    auto gemm_extra = [&](int64_t m, int64_t n, int64_t k) {
      return [=](bench::Record& r) { r.i("m", m).i("n", n).i("k", k); };
    };
    // im2col / col2im alone (one pass over the whole batch, as the conv does per chunk): with the GEMM rows they
    // split a conv's time into data movement and multiply.
    const double col_bytes = (static_cast<double>(x.numel()) + static_cast<double>(K) * N) * sizeof(float);
    row(
        "conv_im2col", "native", shape, count, 0, col_bytes,
        [&] { ENGINE_KERNEL("bench_kernels", o_.dev, im2col<float>, s, px, s.n, col.data<float>()); }, "", extra);
    if (!cs.first)
      row(
          "conv_col2im", "native", shape, count, 0, col_bytes,
          [&] { ENGINE_KERNEL("bench_kernels", o_.dev, col2im<float>, s, pcol, s.n, pgx); }, "", extra);
    row(
        "conv_gemm_fwd", blas, engine::cat("M", M, " N", N, " K", K), count, f, 0,
        [&] {
          ENGINE_KERNEL("bench_kernels", o_.dev, gemm<float>, false, false, M, N, K, 1.f, pw, K, pcol, N, 0.f, pout, N);
        },
        "", gemm_extra(M, N, K));
    if (!cs.first)
      row(
          "conv_gemm_bwd_data", blas, engine::cat("M", K, " N", N, " K", M), count, f, 0,
          [&] {
            ENGINE_KERNEL("bench_kernels", o_.dev, gemm<float>, true, false, K, N, M, 1.f, pw, K, pgyt, N, 0.f, pgcol,
                          N);
          },
          "", gemm_extra(K, N, M));
    row(
        "conv_gemm_bwd_weight", blas, engine::cat("M", M, " N", K, " K", N), count, f, 0,
        [&] {
          ENGINE_KERNEL("bench_kernels", o_.dev, gemm<float>, false, true, M, K, N, 1.f, pgyt, N, pcol, N, 0.f, pgw, K);
        },
        "", gemm_extra(M, K, N));
  }

  // ---------------------------------------------------------------- memory-bound ops
  static std::string act_str(const bench::Act& a) { return engine::cat(a.n, "x", a.c, "x", a.h, "x", a.w); }

  void batch_norm(const bench::Act& a, int count) {
    if (!wanted("bn_")) return;
    const kernels::BatchNormShape s{a.n, a.c, a.h * a.w};
    Tensor x = filled({a.n, a.c, a.h, a.w}, o_.dev, 6), y = Tensor::empty(x.shape(), DType::f32, o_.dev);
    Tensor gy = filled(x.shape(), o_.dev, 7), gx = Tensor::empty(x.shape(), DType::f32, o_.dev);
    Tensor gamma = filled({a.c}, o_.dev, 8, 0.5f, 1.5f), beta = filled({a.c}, o_.dev, 9);
    Tensor rm = filled({a.c}, o_.dev, 10), rv = filled({a.c}, o_.dev, 11, 0.5f, 1.5f);
    Tensor sm = Tensor::empty({a.c}, DType::f32, o_.dev), si = Tensor::empty({a.c}, DType::f32, o_.dev);
    Tensor dg = Tensor::empty({a.c}, DType::f32, o_.dev), db = Tensor::empty({a.c}, DType::f32, o_.dev);
    const double n = static_cast<double>(a.numel()) * sizeof(float);
    // Byte model: forward reads x for the statistics, reads x and writes y to normalise (3 passes); backward reads
    // x and gy for the sums, then x and gy again and writes gx (5 passes).
    row(
        "bn_fwd", "native", act_str(a), count, 0, 3 * n,
        [&] {
          ENGINE_KERNEL("bench_kernels", o_.dev, batch_norm_forward_train<float>, x.data<float>(), gamma.data<float>(),
                        beta.data<float>(), y.data<float>(), sm.data<float>(), si.data<float>(), rm.data<float>(),
                        rv.data<float>(), s, 0.1, 1e-5);
        },
        "bn_fwd");
    row(
        "bn_bwd", "native", act_str(a), count, 0, 5 * n,
        [&] {
          ENGINE_KERNEL("bench_kernels", o_.dev, batch_norm_backward<float>, x.data<float>(), gy.data<float>(),
                        gamma.data<float>(), sm.data<float>(), si.data<float>(), gx.data<float>(), dg.data<float>(),
                        db.data<float>(), s, true);
        },
        "bn_bwd");
  }

  void relu(const bench::Act& a, int count) {
    if (!wanted("relu")) return;
    Tensor x = filled({a.numel()}, o_.dev, 12), y = Tensor::empty({a.numel()}, DType::f32, o_.dev);
    Tensor gy = filled({a.numel()}, o_.dev, 13);
    const double n = static_cast<double>(a.numel()) * sizeof(float);
    row(
        "relu_fwd", "native", act_str(a), count, 0, 2 * n,
        [&] {
          ENGINE_KERNEL("bench_kernels", o_.dev, relu_forward<float>, x.data<float>(), y.data<float>(), a.numel());
        },
        "relu_fwd");
    row(
        "relu_bwd", "native", act_str(a), count, 0, 3 * n,
        [&] {
          ENGINE_KERNEL("bench_kernels", o_.dev, relu_backward<float>, x.data<float>(), gy.data<float>(),
                        y.data<float>(), a.numel());
        },
        "relu_bwd");
  }

  // One add per residual join in forward, and one per block input in backward (its gradient arrives from the
  // branch and the shortcut and is summed): counted twice in the step.
  void add(const bench::Act& a, int count) {
    if (!wanted("add")) return;
    Tensor x = filled({a.numel()}, o_.dev, 14), z = filled({a.numel()}, o_.dev, 15);
    Tensor y = Tensor::empty({a.numel()}, DType::f32, o_.dev);
    const double n = static_cast<double>(a.numel()) * sizeof(float);
    row(
        "add", "native", act_str(a), 2 * count, 0, 3 * n,
        [&] {
          ENGINE_KERNEL("bench_kernels", o_.dev, add<float>, x.data<float>(), z.data<float>(), y.data<float>(),
                        a.numel());
        },
        "add");
  }

  void maxpool(const bench::PoolShape& p, int count) {
    if (!wanted("maxpool")) return;
    kernels::MaxPool2dShape s;
    s.planes = p.in.n * p.in.c, s.h = p.in.h, s.w = p.in.w, s.out_h = p.oh(), s.out_w = p.ow();
    s.kernel_h = s.kernel_w = p.k, s.stride_h = s.stride_w = p.stride, s.pad_h = s.pad_w = p.pad;
    Tensor x = filled({p.in.numel()}, o_.dev, 16), gx = Tensor::empty({p.in.numel()}, DType::f32, o_.dev);
    const int64_t no = s.planes * s.out_h * s.out_w;
    Tensor y = Tensor::empty({no}, DType::f32, o_.dev), gy = filled({no}, o_.dev, 17);
    Tensor arg = Tensor::empty({no}, DType::i32, o_.dev);
    const std::string shape = engine::cat(act_str(p.in), " k", p.k, "s", p.stride, "p", p.pad);
    const double bytes = (static_cast<double>(p.in.numel()) + 2.0 * no) * 4;  // x, y, argmax / gy, argmax, gx
    row(
        "maxpool_fwd", "native", shape, count, 0, bytes,
        [&] {
          ENGINE_KERNEL("bench_kernels", o_.dev, max_pool2d_forward<float>, x.data<float>(), y.data<float>(),
                        arg.data<int32_t>(), s);
        },
        "maxpool_fwd");
    row(
        "maxpool_bwd", "native", shape, count, 0, bytes,
        [&] {
          ENGINE_KERNEL("bench_kernels", o_.dev, max_pool2d_backward<float>, gy.data<float>(), arg.data<int32_t>(),
                        gx.data<float>(), s);
        },
        "maxpool_bwd");
  }

  void avgpool(const bench::Act& a) {
    if (!wanted("avgpool")) return;
    kernels::AdaptivePool2dShape s;
    s.planes = a.n * a.c, s.h = a.h, s.w = a.w, s.out_h = 1, s.out_w = 1;
    Tensor x = filled({a.numel()}, o_.dev, 18), gx = Tensor::empty({a.numel()}, DType::f32, o_.dev);
    Tensor y = Tensor::empty({s.planes}, DType::f32, o_.dev), gy = filled({s.planes}, o_.dev, 19);
    const double bytes = (static_cast<double>(a.numel()) + s.planes) * 4;
    row(
        "avgpool_fwd", "native", act_str(a) + " -> 1x1", 1, 0, bytes,
        [&] {
          ENGINE_KERNEL("bench_kernels", o_.dev, adaptive_avg_pool2d_forward<float>, x.data<float>(), y.data<float>(),
                        s);
        },
        "avgpool_fwd");
    row(
        "avgpool_bwd", "native", act_str(a) + " -> 1x1", 1, 0, bytes,
        [&] {
          ENGINE_KERNEL("bench_kernels", o_.dev, adaptive_avg_pool2d_backward<float>, gy.data<float>(),
                        gx.data<float>(), s);
        },
        "avgpool_bwd");
  }

  // Fully connected layer as engine/ops/linear does it: GEMMs plus the bias kernels of kernels/linear.h.
  void linear(int64_t n, int64_t in, int64_t out) {
    if (!wanted("linear")) return;
    Tensor x = filled({n, in}, o_.dev, 20), w = filled({out, in}, o_.dev, 21, -0.1f, 0.1f);
    Tensor b = filled({out}, o_.dev, 22), y = Tensor::empty({n, out}, DType::f32, o_.dev);
    Tensor gy = filled({n, out}, o_.dev, 23), gx = Tensor::empty({n, in}, DType::f32, o_.dev);
    Tensor gw = Tensor::empty({out, in}, DType::f32, o_.dev), gb = Tensor::empty({out}, DType::f32, o_.dev);
    const float *px = x.data<float>(), *pw = w.data<float>(), *pgy = gy.data<float>();
    float *py = y.data<float>(), *pgx = gx.data<float>(), *pgw = gw.data<float>();
    const double f = 2.0 * n * in * out;
    const std::string shape = engine::cat(n, "x", in, " -> ", out);
    row(
        "linear_fwd", "native", shape, 1, f, 0,
        [&] {
          ENGINE_KERNEL("bench_kernels", o_.dev, gemm<float>, false, true, n, out, in, 1.f, px, in, pw, in, 0.f, py,
                        out);
          ENGINE_KERNEL("bench_kernels", o_.dev, add_row_bias<float>, b.data<float>(), py, n, out);
        },
        "linear_fwd");
    row(
        "linear_bwd", "native", shape, 1, 2 * f, 0,
        [&] {
          ENGINE_KERNEL("bench_kernels", o_.dev, gemm<float>, false, false, n, in, out, 1.f, pgy, out, pw, in, 0.f, pgx,
                        in);
          ENGINE_KERNEL("bench_kernels", o_.dev, gemm<float>, true, false, out, in, n, 1.f, pgy, out, px, in, 0.f, pgw,
                        in);
          ENGINE_KERNEL("bench_kernels", o_.dev, sum_rows<float>, pgy, gb.data<float>(), n, out);
        },
        "linear_bwd");
  }

  void cross_entropy(int64_t n, int64_t c) {
    if (!wanted("ce_")) return;
    Tensor z = filled({n, c}, o_.dev, 24, -3.f, 3.f), g = Tensor::empty({n, c}, DType::f32, o_.dev);
    Tensor loss = Tensor::empty({1}, DType::f32, o_.dev), one = Tensor::full({1}, 1.0, DType::f32, o_.dev);
    Tensor gz = Tensor::empty({n, c}, DType::f32, o_.dev);
    std::vector<double> lab(n);
    for (int64_t i = 0; i < n; ++i) lab[i] = static_cast<double>(i % c);
    Tensor labels = Tensor::from_vector(lab, {n}, DType::i32, o_.dev);
    const kernels::CrossEntropyShape s{n, c, 0.0};
    const std::string shape = engine::cat(n, "x", c);
    row(
        "ce_fwd", "native", shape, 1, 0, 2.0 * n * c * 4,
        [&] {
          ENGINE_KERNEL("bench_kernels", o_.dev, cross_entropy_forward<float>, z.data<float>(), labels.data<int32_t>(),
                        loss.data<float>(), g.data<float>(), s);
        },
        "ce_fwd");
    row(
        "ce_bwd", "native", shape, 1, 0, 2.0 * n * c * 4,
        [&] {
          ENGINE_KERNEL("bench_kernels", o_.dev, cross_entropy_backward<float>, g.data<float>(), one.data<float>(),
                        gz.data<float>(), n * c);
        },
        "ce_bwd");
  }

  // The optimizer as engine/optim/sgd runs it: one call over the table of every parameter of the real model.
  void sgd(const engine::nn::Module& model) {
    if (!wanted("sgd")) return;
    std::vector<Tensor> keep;
    std::vector<kernels::SgdTensor> table;
    int64_t total = 0;
    for (const Tensor& p : model.parameters()) {
      Tensor w = filled(p.shape(), o_.dev, 25), g = filled(p.shape(), o_.dev, 26), b = filled(p.shape(), o_.dev, 27);
      table.push_back({w.raw_data(), g.raw_data(), b.raw_data(), p.numel()});
      keep.insert(keep.end(), {w, g, b});
      total += p.numel();
    }
    kernels::SgdParams sp;
    sp.lr = 1e-6, sp.momentum = 0.9, sp.weight_decay = 1e-4;
    row(
        "sgd", "native", engine::cat(table.size(), " tensors, ", total, " params"), 1, 0, 5.0 * total * 4,
        [&] {
          ENGINE_KERNEL("bench_kernels", o_.dev, sgd_update<float>, table.data(), static_cast<int>(table.size()), sp);
        },
        "sgd");
  }

  // Per-op totals (median x count): where the step's time goes. cuDNN only has the convolutions, so the cudnn
  // and fastest estimates take every other op from the native rows, as the engines do.
  void print_estimate(const std::string& title) {
    if (estimate_.count("cudnn") && estimate_.count("native")) {
      auto& cudnn = estimate_["cudnn"];
      auto& fastest = estimate_["fastest"];
      for (const auto& [k, v] : estimate_["native"])
        if (!cudnn.count(k)) cudnn[k] = v, fastest[k] = v;
      for (const auto& [name, b] : per_shape_) {
        (void)name;
        const double best =
            b.cudnn_ms >= 0 && b.native_ms >= 0 ? std::min(b.cudnn_ms, b.native_ms) : std::max(b.cudnn_ms, b.native_ms);
        fastest[b.key] += best * b.count;
      }
    }
    for (const auto& kv : estimate_) {
      double total = 0;
      for (const auto& e : kv.second) total += e.second;
      bench::Output t(json_, {{"op", "op"}, {"step_ms", "ms per step"}, {"share", "share %"}});
      out_.note(
          engine::cat(title, " (conv engine ", kv.first, "): sum over the step of median x count = ", total, " ms"));
      for (const auto& k : order_) {
        if (!kv.second.count(k)) continue;
        bench::Record r;
        r.s("summary", kv.first)
            .s("op", k)
            .f("step_ms", kv.second.at(k), 2)
            .f("share", 100 * kv.second.at(k) / total, 1);
        t.add(r);
      }
      bench::Record r;
      r.s("summary", kv.first).s("op", "total").f("step_ms", total, 2).f("share", 100.0, 1);
      t.add(r);
      t.flush();
    }
  }

 private:
  const Options& o_;
  bench::Output& out_;
  bool json_;
  std::map<std::string, std::map<std::string, double>> estimate_;
  std::vector<std::string> order_;
  struct PerShape {
    std::string key;
    int count = 0;
    double native_ms = -1, cudnn_ms = -1;
  };
  std::map<std::string, PerShape> per_shape_;
#if ENGINE_HAVE_CUDA
  std::unique_ptr<bench::GpuL2Flusher> gpu_flush_;
#endif
  std::unique_ptr<bench::CpuCacheFlusher> cpu_flush_;
};

}  // namespace bench_kernels
