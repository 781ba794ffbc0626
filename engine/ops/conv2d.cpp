// conv2d front-end: argument checks, output shape, the backward rule, and the choice between our kernels
// (kernels/cpu/conv.cpp, kernels/cuda/conv.cu) and cuDNN (kernels/cudnn/conv.cpp) for CUDA tensors.
#include <fmt/core.h>

#include <array>
#include <exception>
#include <map>
#include <mutex>

#include "engine/ops.h"
#include "engine/ops/common.h"
#include "kernels/conv.h"
#if ENGINE_HAVE_CUDNN
#include "kernels/cuda/runtime.h"
#endif

namespace engine {
namespace {

ConvEngine g_conv_engine = ConvEngine::native;

template <class T>
void forward_on(const Tensor& x, ConvEngine eng, const kernels::Conv2dShape& s, const T* xp, const T* wp, const T* bp,
                T* yp) {
#if ENGINE_HAVE_CUDNN
  if (x.is_cuda() && eng == ConvEngine::cudnn) return kernels::cudnn::conv2d_forward<T>(s, xp, wp, bp, yp);
#endif
  (void)eng;
  ENGINE_KERNEL("conv2d", x, conv2d_forward<T>, s, xp, wp, bp, yp);
}

template <class T>
void backward_on(const Tensor& x, ConvEngine eng, const kernels::Conv2dShape& s, const T* xp, const T* wp, const T* gyp,
                 T* gxp, T* gwp, T* gbp) {
#if ENGINE_HAVE_CUDNN
  if (x.is_cuda() && eng == ConvEngine::cudnn) return kernels::cudnn::conv2d_backward<T>(s, xp, wp, gyp, gxp, gwp, gbp);
#endif
  (void)eng;
  ENGINE_KERNEL("conv2d backward", x, conv2d_backward<T>, s, xp, wp, gyp, gxp, gwp, gbp);
}

// ConvEngine::fastest: per shape, dtype, TF32 setting and direction (forward, or backward with the gradients
// wanted), the engine that ran faster when both were timed on the first such call. The layout is in the key.
using ChoiceKey = std::array<int64_t, 17>;

ChoiceKey choice_key(const kernels::Conv2dShape& s, DType dtype, int64_t direction) {
#if ENGINE_HAVE_CUDNN
  const int64_t tf32 = kernels::cuda::allow_tf32();
#else
  const int64_t tf32 = 0;
#endif
  return {s.n,     s.c,     s.h,  s.w,  s.oc,           s.kh, s.kw,      s.stride_h,       s.stride_w,
          s.pad_h, s.pad_w, s.oh, s.ow, int64_t(dtype), tf32, direction, int64_t(s.layout)};
}

// Runs `run(engine)` with the engine chosen for `key`, choosing first if needed: both engines run once untimed
// (cuDNN searches its algorithms on a shape's first call, ours may grow the allocator), then once each between
// CUDA events; the faster is kept (native where cuDNN throws). Both engines overwrite their outputs, so the
// chosen one runs last and its result is what the caller gets.
template <class Run>
void run_fastest(const ChoiceKey& key, Run&& run) {
  static std::mutex mu;
  static std::map<ChoiceKey, ConvEngine> chosen;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = chosen.find(key);
    if (it != chosen.end()) return run(it->second);
  }
#if ENGINE_HAVE_CUDNN
  run(ConvEngine::native);
  ConvEngine e = ConvEngine::native;
  try {
    run(ConvEngine::cudnn);
    const double native_ms = kernels::cuda::time_on_stream_ms([&] { run(ConvEngine::native); });
    const double cudnn_ms = kernels::cuda::time_on_stream_ms([&] { run(ConvEngine::cudnn); });
    if (cudnn_ms < native_ms) e = ConvEngine::cudnn;
  } catch (const std::exception& err) {
    // A shape cuDNN cannot run (no algorithm in this math mode, beyond its 32-bit descriptors) is ours to run;
    // said once per shape and direction, as the choice is kept.
    fmt::print(stderr, "notice: --conv fastest: {}; this call runs on the native kernels\n", err.what());
  }
  if (e == ConvEngine::native) run(e);
  std::lock_guard<std::mutex> lock(mu);
  chosen[key] = e;
#else
  run(ConvEngine::native);
#endif
}

}  // namespace

bool cudnn_compiled() {
#if ENGINE_HAVE_CUDNN
  return true;
#else
  return false;
#endif
}

void set_conv_engine(ConvEngine e) {
  ENGINE_CHECK(e == ConvEngine::native || cudnn_compiled(),
               "set_conv_engine: cuDNN (or the fastest of ours and cuDNN) was asked for, but this engine was built "
               "without cuDNN (install cuDNN and "
               "rebuild with -DENGINE_CUDA=ON -DENGINE_CUDNN=ON, or use the native convolution engine)");
  g_conv_engine = e;
}

ConvEngine conv_engine() { return g_conv_engine; }

ConvEngine parse_conv_engine(const std::string& name) {
  if (name == "native") return ConvEngine::native;
  if (name == "cudnn") return ConvEngine::cudnn;
  if (name == "fastest") return ConvEngine::fastest;
  fail(cat("unknown convolution engine '", name, "': expected native, cudnn or fastest"));
}

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dParams& p) {
  const bool nhwc = p.layout == Layout::nhwc;
  check_dim("conv2d", dims_name("input", p.layout).c_str(), x, 4);
  check_dim("conv2d", nhwc ? "weight (OC, KH, KW, C)" : "weight (OC, C, KH, KW)", weight, 4);
  check_storage("conv2d", "input", x);
  check_same("conv2d", {{"input", x}, {"weight", weight}, {"bias", bias}});
  const std::string shapes =
      cat("input ", shape_str(x.shape()), ", weight ", shape_str(weight.shape()), nhwc ? ", channels last" : "");
  // The weight reads as [OC, C, KH, KW] in the input's layout, as an activation [N, C, H, W] does.
  const Dims4 xd = dims4(x, p.layout), wd = dims4(weight, p.layout);
  const int64_t w_c = wd.c, kh = wd.h, kw = wd.w;
  ENGINE_CHECK(xd.c == w_c, "conv2d: input has ", xd.c, " channels but weight expects ", w_c, " (", shapes, ")");
  ENGINE_CHECK(xd.n > 0 && xd.c > 0 && xd.h > 0 && xd.w > 0 && weight.size(0) > 0 && kh > 0 && kw > 0,
               "conv2d: every dimension of input and weight must be positive (", shapes, ")");
  if (bias.defined()) {
    ENGINE_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0), "conv2d: bias ", shape_str(bias.shape()),
                 " must have one element per output channel, [", weight.size(0), "] (", shapes, ")");
  }
  ENGINE_CHECK(p.stride_h >= 1 && p.stride_w >= 1 && p.pad_h >= 0 && p.pad_w >= 0,
               "conv2d: stride must be >= 1 and padding >= 0, got stride ", p.stride_h, "x", p.stride_w, ", padding ",
               p.pad_h, "x", p.pad_w);

  kernels::Conv2dShape s;
  s.n = xd.n, s.c = xd.c, s.h = xd.h, s.w = xd.w;
  s.oc = weight.size(0), s.kh = kh, s.kw = kw;
  s.stride_h = p.stride_h, s.stride_w = p.stride_w, s.pad_h = p.pad_h, s.pad_w = p.pad_w;
  s.layout = p.layout;
  const int64_t ph = s.h + 2 * s.pad_h, pw = s.w + 2 * s.pad_w;
  ENGINE_CHECK(ph >= s.kh && pw >= s.kw, "conv2d: kernel ", s.kh, "x", s.kw, " is larger than the padded input ", ph,
               "x", pw, " (", shapes, ", padding ", p.pad_h, "x", p.pad_w, "): the output would be empty");
  s.oh = (ph - s.kh) / s.stride_h + 1;
  s.ow = (pw - s.kw) / s.stride_w + 1;

  const ConvEngine eng = g_conv_engine;
  Tensor y = Tensor::empty(shape4(s.n, s.oc, s.oh, s.ow, s.layout), x.dtype(), x.device());
  dispatch_storage("conv2d", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    auto run = [&](ConvEngine e) {
      forward_on<T>(x, e, s, x.data<T>(), weight.data<T>(), bias.defined() ? bias.data<T>() : nullptr, y.data<T>());
    };
    if (eng == ConvEngine::fastest && x.is_cuda()) {
      run_fastest(choice_key(s, x.dtype(), bias.defined() ? 1 : 0), run);
    } else {
      run(eng);
    }
  });

  // The engine is fixed at forward time so that forward and backward of one call agree.
  record(y, "conv2d", {x, weight, bias}, [x, weight, s, eng](const Tensor& g, const std::vector<bool>& need) {
    std::vector<Tensor> grads(3);
    if (need[0]) grads[0] = Tensor::empty(x.shape(), x.dtype(), x.device());
    if (need[1]) grads[1] = Tensor::empty(weight.shape(), weight.dtype(), weight.device());
    if (need.size() > 2 && need[2]) grads[2] = Tensor::empty({s.oc}, weight.dtype(), weight.device());
    dispatch_storage("conv2d backward", x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      auto ptr = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
      auto run = [&](ConvEngine e) {
        backward_on<T>(x, e, s, x.data<T>(), weight.data<T>(), g.data<T>(), ptr(grads[0]), ptr(grads[1]),
                       ptr(grads[2]));
      };
      if (eng == ConvEngine::fastest && x.is_cuda()) {
        const int64_t direction =
            2 + (grads[0].defined() ? 1 : 0) + (grads[1].defined() ? 2 : 0) + (grads[2].defined() ? 4 : 0);
        run_fastest(choice_key(s, x.dtype(), direction), run);
      } else {
        run(eng);
      }
    });
    return grads;
  });
  return y;
}

}  // namespace engine
