// The rows of bench_kernels: class Bench times every kernel of a ResNet training step at one layer shape, calls
// the kernels directly through ENGINE_KERNEL (the engine's own dispatch), prints a row per kernel and sums the
// step estimate. Included by benchmarks/bench_kernels.cpp only (every .cpp in benchmarks/ is a program).
//
// The activation-kernel rows (convolution, GEMM, batch norm, pooling, ReLU, add, linear) are templates over the
// storage type T (float or kernels::bf16, bench_kernels --precision): their tensors stream T, batch-norm
// parameters and statistics and GEMM alpha/beta are compute_t<T> (float for bf16), and their byte counts use
// sizeof(T). The rows of kernels that only take compute types (cross-entropy, SGD: KERNELS_FOR_EACH_COMPUTE)
// stay float32 whatever the precision; every row says its storage type in the dtype column.
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
#include "engine/ops.h"
#include "engine/ops/common.h"  // ENGINE_KERNEL: the kernel on the benchmark's device
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

// Deterministic values in [lo, hi) filled in float on the host (fast, unlike normal draws), converted to dtype
// there and copied to the device.
inline Tensor filled(const engine::Shape& shape, Device dev, uint32_t seed, float lo = -1.f, float hi = 1.f,
                     DType dtype = DType::f32) {
  Tensor h = Tensor::empty(shape, DType::f32, Device::cpu());
  float* p = h.data<float>();
  uint32_t s = seed * 2654435761u + 12345u;
  const int64_t n = h.numel();
  for (int64_t i = 0; i < n; ++i) {
    s = s * 1664525u + 1013904223u;
    p[i] = lo + (hi - lo) * static_cast<float>(s >> 8) * (1.0f / 16777216.0f);
  }
  return h.to(dtype).to(dev);
}

struct Options {
  Device dev;
  std::string model;
  int64_t batch = 16, res = 96;
  bench::TimingOptions timing;
  double peak_gflops = 0, peak_gbps = 0;
  std::vector<std::string> ops;  // substrings; empty = all
  bool gemm_rows = true;         // bare-GEMM and im2col/col2im rows beside each convolution
  // Memory layouts the convolution rows run in (--layout): NCHW rows have impl native / cudnn, NHWC rows
  // native-nhwc / cudnn-nhwc, each with its own step estimate (the other ops always come from the NCHW rows).
  std::vector<kernels::Layout> layouts = {kernels::Layout::nchw};
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
  // dt: the storage type the row's kernels stream. step_key (non-empty) adds median x count to that op's share of
  // the step estimate.
  void row(const std::string& op, const std::string& impl, DType dt, const std::string& shape, int count, double flops,
           double bytes, const std::function<void()>& fn, const std::string& step_key = "",
           const std::function<void(bench::Record&)>& extra = {}) {
    if (!wanted(op)) return;
    const bench::Stats s = time(fn);
    const double sec = s.median / 1e3;
    const double gflops = flops > 0 ? flops / sec / 1e9 : 0;
    const double gbps = bytes > 0 ? bytes / sec / 1e9 : 0;
    const double peak = flops > 0 ? o_.peak_gflops : o_.peak_gbps;  // 0: unknown, no %peak
    bench::Record r;
    r.s("op", op).s("impl", impl).s("dtype", engine::dtype_name(dt)).s("shape", shape).i("count", count);
    if (extra) extra(r);
    r.f("ms", s.median, 3).f("ms_min", s.min, 3).f("ms_max", s.max, 3).f("ms_q1", s.q1, 3).f("ms_q3", s.q3, 3);
    r.f("gflops", gflops, 1).f("gbps", gbps, 1);
    if (peak > 0) r.f("pct_peak", 100 * (flops > 0 ? gflops : gbps) / peak, 1);
    r.f("step_ms", s.median * count, 2);
    out_.add(r);
    if (!step_key.empty()) {
      // impl is native, cudnn, native-nhwc or cudnn-nhwc (the convolutions); every other op is native.
      const std::string engine = impl == "openblas" || impl == "cublas" ? "native" : impl;
      if (std::find(order_.begin(), order_.end(), step_key) == order_.end()) order_.push_back(step_key);
      estimate_[engine][step_key] += s.median * count;
      // Per conv shape, direction and layout, for the `fastest` engine's estimate (the faster of the two per call;
      // print_estimate takes every other op from the native totals once).
      if (step_key == "conv_fwd" || step_key == "conv_bwd") {
        const bool nhwc = engine.find("-nhwc") != std::string::npos;
        auto& b = per_shape_[step_key + " " + shape + (nhwc ? " nhwc" : "")];
        b.key = step_key, b.count = count, b.suffix = nhwc ? "-nhwc" : "";
        (engine.rfind("cudnn", 0) == 0 ? b.cudnn_ms : b.native_ms) = s.median;
      }
    }
  }

  // Every row of one training step of the traced network, the activation kernels in storage type T.
  template <class T>
  void step(const bench::NetShapes& ns, const engine::nn::Module& model) {
    for (const auto& [cs, count] : bench::distinct(ns.convs)) conv<T>(cs, count);
    for (const auto& [act, count] : bench::distinct(ns.bns)) batch_norm<T>(act, count);
    for (const auto& [act, count] : bench::distinct(ns.relus)) relu<T>(act, count);
    for (const auto& [act, count] : bench::distinct(ns.adds)) add<T>(act, count);
    for (const auto& p : ns.maxpools) maxpool<T>(p, 1);
    avgpool<T>(ns.avgpool_in);
    linear<T>(ns.batch, ns.fc_in, ns.classes);
    cross_entropy(ns.batch, ns.classes);  // float32: the logits are cast to float first, as autocast does
    sgd(model);                           // float32: the master weights and their momentum
  }

  // ---------------------------------------------------------------- convolution
  template <class T>
  void conv(const bench::ConvShape& cs, int count) {
    for (kernels::Layout layout : o_.layouts) conv<T>(cs, count, layout);
  }

  // One layout's rows. The buffers hold the same element counts in either layout, so only the shape's layout and
  // the impl names change (native-nhwc, cudnn-nhwc); the bare-GEMM rows are the NCHW GEMMs, run once.
  template <class T>
  void conv(const bench::ConvShape& cs, int count, kernels::Layout layout) {
    using C = kernels::compute_t<T>;
    const DType dt = engine::dtype_of<T>();
    const bool nhwc = layout == kernels::Layout::nhwc;
    const std::string native = nhwc ? "native-nhwc" : "native", cudnn = nhwc ? "cudnn-nhwc" : "cudnn";
    kernels::Conv2dShape s;
    s.n = cs.n, s.c = cs.c, s.h = cs.h, s.w = cs.w, s.oc = cs.oc, s.kh = s.kw = cs.k;
    s.stride_h = s.stride_w = cs.stride, s.pad_h = s.pad_w = cs.pad, s.oh = cs.oh(), s.ow = cs.ow();
    s.layout = layout;
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
          .i("pad", cs.pad)
          .s("layout", nhwc ? "nhwc" : "nchw");
    };
    const bool any_conv = wanted("conv_fwd") || wanted("conv_bwd");
    const bool any_gemm = o_.gemm_rows && (wanted("conv_gemm") || wanted("conv_im2col") || wanted("conv_col2im"));
    const bool gemm_here = any_gemm && layout == o_.layouts.front();  // the bare GEMMs once per shape
    if (!any_conv && !any_gemm) return;
    Tensor x = filled({s.n, s.c, s.h, s.w}, o_.dev, 1, -1.f, 1.f, dt);
    Tensor w = filled({s.oc, s.c, s.kh, s.kw}, o_.dev, 2, -0.1f, 0.1f, dt);
    Tensor y = Tensor::empty({s.n, s.oc, s.oh, s.ow}, dt, o_.dev);
    Tensor gy = filled({s.n, s.oc, s.oh, s.ow}, o_.dev, 3, -1.f, 1.f, dt);
    Tensor gx = Tensor::empty({s.n, s.c, s.h, s.w}, dt, o_.dev);
    Tensor gw = Tensor::empty({s.oc, s.c, s.kh, s.kw}, dt, o_.dev);
    const T *px = x.data<T>(), *pw = w.data<T>(), *pgy = gy.data<T>();
    T *py = y.data<T>(), *pgx = gx.data<T>(), *pgw = gw.data<T>();
    const double f = cs.flops();
    // In the step: forward, then one backward call for data and weight (weight only for the stem, whose input
    // needs no gradient).
    row(
        "conv_fwd", native, dt, shape, count, f, 0,
        [&] { ENGINE_KERNEL("bench_kernels", o_.dev, conv2d_forward<T>, s, px, pw, nullptr, py); }, "conv_fwd", extra);
    if (!cs.first)
      row(
          "conv_bwd", native, dt, shape, count, 2 * f, 0,
          [&] { ENGINE_KERNEL("bench_kernels", o_.dev, conv2d_backward<T>, s, px, pw, pgy, pgx, pgw, nullptr); },
          "conv_bwd", extra);
    if (!cs.first)
      row(
          "conv_bwd_data", native, dt, shape, count, f, 0,
          [&] { ENGINE_KERNEL("bench_kernels", o_.dev, conv2d_backward<T>, s, px, pw, pgy, pgx, nullptr, nullptr); },
          "", extra);
    row(
        "conv_bwd_weight", native, dt, shape, count, f, 0,
        [&] { ENGINE_KERNEL("bench_kernels", o_.dev, conv2d_backward<T>, s, px, pw, pgy, nullptr, pgw, nullptr); },
        cs.first ? "conv_bwd" : "", extra);
#if ENGINE_HAVE_CUDNN
    if (g_cuda) {
      row(
          "conv_fwd", cudnn, dt, shape, count, f, 0, [&] { kernels::cudnn::conv2d_forward<T>(s, px, pw, nullptr, py); },
          "conv_fwd", extra);
      if (!cs.first) {
        row(
            "conv_bwd", cudnn, dt, shape, count, 2 * f, 0,
            [&] { kernels::cudnn::conv2d_backward<T>(s, px, pw, pgy, pgx, pgw, nullptr); }, "conv_bwd", extra);
        row(
            "conv_bwd_data", cudnn, dt, shape, count, f, 0,
            [&] { kernels::cudnn::conv2d_backward<T>(s, px, pw, pgy, pgx, nullptr, nullptr); }, "", extra);
      }
      row(
          "conv_bwd_weight", cudnn, dt, shape, count, f, 0,
          [&] { kernels::cudnn::conv2d_backward<T>(s, px, pw, pgy, nullptr, pgw, nullptr); },
          cs.first ? "conv_bwd" : "", extra);
    }
#endif
    if (!gemm_here) return;
    // The GEMMs of the im2col path alone, over the whole batch at once (the conv may split the batch into chunks
    // to bound its scratch). The gap between conv_* and conv_gemm_* is the price of im2col/col2im and permutes.
    const int64_t M = cs.gemm_m(), N = cs.gemm_n(), K = cs.gemm_k();
    Tensor col = filled({K, N}, o_.dev, 4, -1.f, 1.f, dt);
    Tensor out = Tensor::empty({M, N}, dt, o_.dev);
    Tensor gyt = filled({M, N}, o_.dev, 5, -1.f, 1.f, dt);
    const T* pcol = col.data<T>();
    const T* pgyt = gyt.data<T>();
    T* pout = out.data<T>();
    T* pgcol = col.data<T>();  // bwd-data writes [K, N]: reuse col's storage
    const C one = 1, zero = 0;
    const std::string blas = g_cuda ? "cublas" : "openblas";
    auto gemm_extra = [&](int64_t m, int64_t n, int64_t k) {
      return [=](bench::Record& r) { r.i("m", m).i("n", n).i("k", k); };
    };
    // im2col / col2im alone (one pass over the whole batch, as the conv does per chunk): with the GEMM rows they
    // split a conv's time into data movement and multiply.
    const double col_bytes = (static_cast<double>(x.numel()) + static_cast<double>(K) * N) * sizeof(T);
    row(
        "conv_im2col", native, dt, shape, count, 0, col_bytes,
        [&] { ENGINE_KERNEL("bench_kernels", o_.dev, im2col<T>, s, px, s.n, pgcol); }, "", extra);
    if (!cs.first)
      row(
          "conv_col2im", native, dt, shape, count, 0, col_bytes,
          [&] { ENGINE_KERNEL("bench_kernels", o_.dev, col2im<T>, s, pcol, s.n, pgx); }, "", extra);
    row(
        "conv_gemm_fwd", blas, dt, engine::cat("M", M, " N", N, " K", K), count, f, 0,
        [&] {
          ENGINE_KERNEL("bench_kernels", o_.dev, gemm<T>, false, false, M, N, K, one, pw, K, pcol, N, zero, pout, N);
        },
        "", gemm_extra(M, N, K));
    if (!cs.first)
      row(
          "conv_gemm_bwd_data", blas, dt, engine::cat("M", K, " N", N, " K", M), count, f, 0,
          [&] {
            ENGINE_KERNEL("bench_kernels", o_.dev, gemm<T>, true, false, K, N, M, one, pw, K, pgyt, N, zero, pgcol, N);
          },
          "", gemm_extra(K, N, M));
    row(
        "conv_gemm_bwd_weight", blas, dt, engine::cat("M", M, " N", K, " K", N), count, f, 0,
        [&] {
          ENGINE_KERNEL("bench_kernels", o_.dev, gemm<T>, false, true, M, K, N, one, pgyt, N, pcol, N, zero, pgw, K);
        },
        "", gemm_extra(M, K, N));
  }

  // ---------------------------------------------------------------- memory-bound ops
  static std::string act_str(const bench::Act& a) { return engine::cat(a.n, "x", a.c, "x", a.h, "x", a.w); }

  // x, y, gy, gx stream T; gamma, beta, the statistics and their gradients are compute_t<T> (float for bf16), as
  // nn::BatchNorm2d keeps them.
  template <class T>
  void batch_norm(const bench::Act& a, int count) {
    if (!wanted("bn_")) return;
    using C = kernels::compute_t<T>;
    const DType dt = engine::dtype_of<T>(), ct = engine::dtype_of<C>();
    const kernels::BatchNormShape s{a.n, a.c, a.h * a.w};
    Tensor x = filled({a.n, a.c, a.h, a.w}, o_.dev, 6, -1.f, 1.f, dt), y = Tensor::empty(x.shape(), dt, o_.dev);
    Tensor gy = filled(x.shape(), o_.dev, 7, -1.f, 1.f, dt), gx = Tensor::empty(x.shape(), dt, o_.dev);
    Tensor gamma = filled({a.c}, o_.dev, 8, 0.5f, 1.5f, ct), beta = filled({a.c}, o_.dev, 9, -1.f, 1.f, ct);
    Tensor rm = filled({a.c}, o_.dev, 10, -1.f, 1.f, ct), rv = filled({a.c}, o_.dev, 11, 0.5f, 1.5f, ct);
    Tensor sm = Tensor::empty({a.c}, ct, o_.dev), si = Tensor::empty({a.c}, ct, o_.dev);
    Tensor dg = Tensor::empty({a.c}, ct, o_.dev), db = Tensor::empty({a.c}, ct, o_.dev);
    const double n = static_cast<double>(a.numel()) * sizeof(T);
    // Byte model: forward reads x for the statistics, reads x and writes y to normalise (3 passes); backward reads
    // x and gy for the sums, then x and gy again and writes gx (5 passes).
    row(
        "bn_fwd", "native", dt, act_str(a), count, 0, 3 * n,
        [&] {
          ENGINE_KERNEL("bench_kernels", o_.dev, batch_norm_forward_train<T>, x.data<T>(), gamma.data<C>(),
                        beta.data<C>(), y.data<T>(), sm.data<C>(), si.data<C>(), rm.data<C>(), rv.data<C>(), s, 0.1,
                        1e-5);
        },
        "bn_fwd");
    row(
        "bn_bwd", "native", dt, act_str(a), count, 0, 5 * n,
        [&] {
          ENGINE_KERNEL("bench_kernels", o_.dev, batch_norm_backward<T>, x.data<T>(), gy.data<T>(), gamma.data<C>(),
                        sm.data<C>(), si.data<C>(), gx.data<T>(), dg.data<C>(), db.data<C>(), s, true);
        },
        "bn_bwd");
  }

  template <class T>
  void relu(const bench::Act& a, int count) {
    if (!wanted("relu")) return;
    const DType dt = engine::dtype_of<T>();
    Tensor x = filled({a.numel()}, o_.dev, 12, -1.f, 1.f, dt), y = Tensor::empty({a.numel()}, dt, o_.dev);
    Tensor gy = filled({a.numel()}, o_.dev, 13, -1.f, 1.f, dt);
    const double n = static_cast<double>(a.numel()) * sizeof(T);
    row(
        "relu_fwd", "native", dt, act_str(a), count, 0, 2 * n,
        [&] { ENGINE_KERNEL("bench_kernels", o_.dev, relu_forward<T>, x.data<T>(), y.data<T>(), a.numel()); },
        "relu_fwd");
    row(
        "relu_bwd", "native", dt, act_str(a), count, 0, 3 * n,
        [&] {
          ENGINE_KERNEL("bench_kernels", o_.dev, relu_backward<T>, x.data<T>(), gy.data<T>(), y.data<T>(), a.numel());
        },
        "relu_bwd");
  }

  // One add per residual join in forward, and one per block input in backward (its gradient arrives from the
  // branch and the shortcut and is summed): counted twice in the step.
  template <class T>
  void add(const bench::Act& a, int count) {
    if (!wanted("add")) return;
    const DType dt = engine::dtype_of<T>();
    Tensor x = filled({a.numel()}, o_.dev, 14, -1.f, 1.f, dt), z = filled({a.numel()}, o_.dev, 15, -1.f, 1.f, dt);
    Tensor y = Tensor::empty({a.numel()}, dt, o_.dev);
    const double n = static_cast<double>(a.numel()) * sizeof(T);
    row(
        "add", "native", dt, act_str(a), 2 * count, 0, 3 * n,
        [&] { ENGINE_KERNEL("bench_kernels", o_.dev, add<T>, x.data<T>(), z.data<T>(), y.data<T>(), a.numel()); },
        "add");
  }

  template <class T>
  void maxpool(const bench::PoolShape& p, int count) {
    if (!wanted("maxpool")) return;
    const DType dt = engine::dtype_of<T>();
    kernels::MaxPool2dShape s;
    s.planes = p.in.n * p.in.c, s.h = p.in.h, s.w = p.in.w, s.out_h = p.oh(), s.out_w = p.ow();
    s.kernel_h = s.kernel_w = p.k, s.stride_h = s.stride_w = p.stride, s.pad_h = s.pad_w = p.pad;
    Tensor x = filled({p.in.numel()}, o_.dev, 16, -1.f, 1.f, dt), gx = Tensor::empty({p.in.numel()}, dt, o_.dev);
    const int64_t no = s.planes * s.out_h * s.out_w;
    Tensor y = Tensor::empty({no}, dt, o_.dev), gy = filled({no}, o_.dev, 17, -1.f, 1.f, dt);
    Tensor arg = Tensor::empty({no}, DType::i32, o_.dev);
    const std::string shape = engine::cat(act_str(p.in), " k", p.k, "s", p.stride, "p", p.pad);
    // x, y (T) and the int32 argmax forward; gy, argmax and gx backward.
    const double bytes = (static_cast<double>(p.in.numel()) + no) * sizeof(T) + no * 4.0;
    row(
        "maxpool_fwd", "native", dt, shape, count, 0, bytes,
        [&] {
          ENGINE_KERNEL("bench_kernels", o_.dev, max_pool2d_forward<T>, x.data<T>(), y.data<T>(), arg.data<int32_t>(),
                        s);
        },
        "maxpool_fwd");
    row(
        "maxpool_bwd", "native", dt, shape, count, 0, bytes,
        [&] {
          ENGINE_KERNEL("bench_kernels", o_.dev, max_pool2d_backward<T>, gy.data<T>(), arg.data<int32_t>(),
                        gx.data<T>(), s);
        },
        "maxpool_bwd");
  }

  template <class T>
  void avgpool(const bench::Act& a) {
    if (!wanted("avgpool")) return;
    const DType dt = engine::dtype_of<T>();
    kernels::AdaptivePool2dShape s;
    s.planes = a.n * a.c, s.h = a.h, s.w = a.w, s.out_h = 1, s.out_w = 1;
    Tensor x = filled({a.numel()}, o_.dev, 18, -1.f, 1.f, dt), gx = Tensor::empty({a.numel()}, dt, o_.dev);
    Tensor y = Tensor::empty({s.planes}, dt, o_.dev), gy = filled({s.planes}, o_.dev, 19, -1.f, 1.f, dt);
    const double bytes = (static_cast<double>(a.numel()) + s.planes) * sizeof(T);
    row(
        "avgpool_fwd", "native", dt, act_str(a) + " -> 1x1", 1, 0, bytes,
        [&] { ENGINE_KERNEL("bench_kernels", o_.dev, adaptive_avg_pool2d_forward<T>, x.data<T>(), y.data<T>(), s); },
        "avgpool_fwd");
    row(
        "avgpool_bwd", "native", dt, act_str(a) + " -> 1x1", 1, 0, bytes,
        [&] { ENGINE_KERNEL("bench_kernels", o_.dev, adaptive_avg_pool2d_backward<T>, gy.data<T>(), gx.data<T>(), s); },
        "avgpool_bwd");
  }

  // Fully connected layer as engine/ops/linear does it: GEMMs plus the bias kernels of kernels/linear.h. Weight and
  // bias stream T as nn::Linear reads them (nn::param_for_input casts the float32 parameters to a bf16 input's type).
  template <class T>
  void linear(int64_t n, int64_t in, int64_t out) {
    if (!wanted("linear")) return;
    using C = kernels::compute_t<T>;
    const DType dt = engine::dtype_of<T>();
    Tensor x = filled({n, in}, o_.dev, 20, -1.f, 1.f, dt), w = filled({out, in}, o_.dev, 21, -0.1f, 0.1f, dt);
    Tensor b = filled({out}, o_.dev, 22, -1.f, 1.f, dt), y = Tensor::empty({n, out}, dt, o_.dev);
    Tensor gy = filled({n, out}, o_.dev, 23, -1.f, 1.f, dt), gx = Tensor::empty({n, in}, dt, o_.dev);
    Tensor gw = Tensor::empty({out, in}, dt, o_.dev), gb = Tensor::empty({out}, dt, o_.dev);
    const T *px = x.data<T>(), *pw = w.data<T>(), *pgy = gy.data<T>();
    T *py = y.data<T>(), *pgx = gx.data<T>(), *pgw = gw.data<T>();
    const C one = 1, zero = 0;
    const double f = 2.0 * n * in * out;
    const std::string shape = engine::cat(n, "x", in, " -> ", out);
    row(
        "linear_fwd", "native", dt, shape, 1, f, 0,
        [&] {
          ENGINE_KERNEL("bench_kernels", o_.dev, gemm<T>, false, true, n, out, in, one, px, in, pw, in, zero, py, out);
          ENGINE_KERNEL("bench_kernels", o_.dev, add_row_bias<T>, b.data<T>(), py, n, out);
        },
        "linear_fwd");
    row(
        "linear_bwd", "native", dt, shape, 1, 2 * f, 0,
        [&] {
          ENGINE_KERNEL("bench_kernels", o_.dev, gemm<T>, false, false, n, in, out, one, pgy, out, pw, in, zero, pgx,
                        in);
          ENGINE_KERNEL("bench_kernels", o_.dev, gemm<T>, true, false, out, in, n, one, pgy, out, px, in, zero, pgw,
                        in);
          ENGINE_KERNEL("bench_kernels", o_.dev, sum_rows<T>, pgy, gb.data<T>(), n, out);
        },
        "linear_bwd");
  }

  // ---------------------------------------------------------------- compute-only kernels: float32 in every mode
  void cross_entropy(int64_t n, int64_t c) {
    if (!wanted("ce_")) return;
    const DType dt = DType::f32;
    Tensor z = filled({n, c}, o_.dev, 24, -3.f, 3.f), g = Tensor::empty({n, c}, dt, o_.dev);
    Tensor loss = Tensor::empty({1}, dt, o_.dev), one = Tensor::full({1}, 1.0, dt, o_.dev);
    Tensor gz = Tensor::empty({n, c}, dt, o_.dev);
    std::vector<double> lab(n);
    for (int64_t i = 0; i < n; ++i) lab[i] = static_cast<double>(i % c);
    Tensor labels = Tensor::from_vector(lab, {n}, DType::i32, o_.dev);
    const kernels::CrossEntropyShape s{n, c, 0.0};
    const std::string shape = engine::cat(n, "x", c);
    row(
        "ce_fwd", "native", dt, shape, 1, 0, 2.0 * n * c * 4,
        [&] {
          ENGINE_KERNEL("bench_kernels", o_.dev, cross_entropy_forward<float>, z.data<float>(), labels.data<int32_t>(),
                        loss.data<float>(), g.data<float>(), s);
        },
        "ce_fwd");
    row(
        "ce_bwd", "native", dt, shape, 1, 0, 2.0 * n * c * 4,
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
    const Tensor lr = Tensor::full({1}, 1e-6, DType::f32, o_.dev);  // read by the kernel, as the optimizer's
    kernels::SgdParams sp;
    sp.lr = lr.raw_data(), sp.momentum = 0.9, sp.weight_decay = 1e-4;
    row(
        "sgd", "native", DType::f32, engine::cat(table.size(), " tensors, ", total, " params"), 1, 0, 5.0 * total * 4,
        [&] {
          ENGINE_KERNEL("bench_kernels", o_.dev, sgd_update<float>, table.data(), static_cast<int>(table.size()), sp);
        },
        "sgd");
  }

  // Per-op totals (median x count): where the step's time goes. cuDNN only has the convolutions, so the cudnn
  // and fastest estimates take every other op from the native rows, as the engines do.
  void print_estimate(const std::string& title) {
    // The NHWC engines (conv rows only) take every other op from the native rows, as cuDNN does.
    if (estimate_.count("native")) {
      const std::map<std::string, double> native = estimate_["native"];
      for (const char* suffix : {"", "-nhwc"}) {
        const std::string nat = std::string("native") + suffix, cud = std::string("cudnn") + suffix;
        const std::string fast = std::string("fastest") + suffix;
        const bool have_cudnn = estimate_.count(cud) > 0, have_native = estimate_.count(nat) > 0;
        if (!have_cudnn && !have_native) continue;
        if (have_cudnn && have_native) {
          auto& fastest = estimate_[fast];
          // fastest: the ops neither conv engine has, plus per conv call the faster of the two.
          for (const auto& [k, v] : native)
            if (!estimate_[cud].count(k)) fastest[k] = v;
          for (const auto& [name, b] : per_shape_) {
            (void)name;
            if (b.suffix != suffix) continue;
            const double best = b.cudnn_ms >= 0 && b.native_ms >= 0 ? std::min(b.cudnn_ms, b.native_ms)
                                                                    : std::max(b.cudnn_ms, b.native_ms);
            fastest[b.key] += best * b.count;
          }
        }
        for (const std::string& e : {nat, cud})
          if (e != "native" && estimate_.count(e))
            for (const auto& [k, v] : native)
              if (!estimate_[e].count(k)) estimate_[e][k] = v;
      }
    }
    for (const auto& kv : estimate_) {
      // --layout nhwc alone: the native rows hold no convolution, only the ops the NHWC estimate borrowed.
      if (kv.first == "native" && estimate_.size() > 1 && !kv.second.count("conv_fwd")) continue;
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
    std::string suffix;  // "" (NCHW) or "-nhwc"
  };
  std::map<std::string, PerShape> per_shape_;
#if ENGINE_HAVE_CUDA
  std::unique_ptr<bench::GpuL2Flusher> gpu_flush_;
#endif
  std::unique_ptr<bench::CpuCacheFlusher> cpu_flush_;
};

}  // namespace bench_kernels
