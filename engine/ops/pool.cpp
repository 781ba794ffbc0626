#include "kernels/pool.h"

#include <limits>

#include "engine/ops.h"
#include "engine/ops/common.h"

namespace engine {

Tensor max_pool2d(const Tensor& x, const Pool2dParams& p) {
  constexpr const char* op = "max_pool2d";
  check_dim(op, dims_name("x", p.layout).c_str(), x, 4);
  check_storage(op, "x", x);
  ENGINE_CHECK(p.kernel_h > 0 && p.kernel_w > 0, op, ": kernel must be positive, got ", p.kernel_h, "x", p.kernel_w);
  ENGINE_CHECK(p.stride_h > 0 && p.stride_w > 0, op, ": stride must be positive, got ", p.stride_h, "x", p.stride_w);
  ENGINE_CHECK(p.pad_h >= 0 && p.pad_w >= 0, op, ": padding must be >= 0, got ", p.pad_h, "x", p.pad_w);
  // As PyTorch: a window may not lie entirely in the padding.
  ENGINE_CHECK(p.pad_h <= p.kernel_h / 2 && p.pad_w <= p.kernel_w / 2, op,
               ": padding should be at most half of the kernel, got padding ", p.pad_h, "x", p.pad_w, " for kernel ",
               p.kernel_h, "x", p.kernel_w);
  const Dims4 d = dims4(x, p.layout);
  kernels::MaxPool2dShape s;
  s.planes = d.n * d.c;
  s.h = d.h;
  s.w = d.w;
  s.layout = p.layout;
  s.c = d.c;
  s.kernel_h = p.kernel_h;
  s.kernel_w = p.kernel_w;
  s.stride_h = p.stride_h;
  s.stride_w = p.stride_w;
  s.pad_h = p.pad_h;
  s.pad_w = p.pad_w;
  // Floor mode; written out so that a kernel larger than the padded input gives 0, not (negative / s) + 1.
  const int64_t span_h = s.h + 2 * p.pad_h - p.kernel_h, span_w = s.w + 2 * p.pad_w - p.kernel_w;
  s.out_h = span_h < 0 ? 0 : span_h / p.stride_h + 1;
  s.out_w = span_w < 0 ? 0 : span_w / p.stride_w + 1;
  ENGINE_CHECK(s.out_h > 0 && s.out_w > 0, op, ": output size is ", s.out_h, "x", s.out_w, " (too small) for x ",
               shape_str(x.shape()), " with kernel ", p.kernel_h, "x", p.kernel_w, ", stride ", p.stride_h, "x",
               p.stride_w, ", padding ", p.pad_h, "x", p.pad_w);
  ENGINE_CHECK(s.h * s.w <= std::numeric_limits<int32_t>::max(), op, ": input plane of ", s.h, "x", s.w,
               " is too large for int32 argmax indices");

  const Shape out_shape = shape4(d.n, d.c, s.out_h, s.out_w, p.layout);
  Tensor y = Tensor::empty(out_shape, x.dtype(), x.device());
  Tensor argmax = Tensor::empty(out_shape, DType::i32, x.device());
  dispatch_storage(op, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    ENGINE_KERNEL(op, x, max_pool2d_forward<T>, x.data<T>(), y.data<T>(), argmax.data<int32_t>(), s);
  });
  const Shape in_shape = x.shape();
  const DType dtype = x.dtype();
  const Device device = x.device();
  record(y, op, {x}, [argmax, s, in_shape, dtype, device](const Tensor& g, const std::vector<bool>&) {
    Tensor gx = Tensor::empty(in_shape, dtype, device);
    dispatch_storage("max_pool2d backward", dtype, [&](auto tag) {
      using T = decltype(tag);
      ENGINE_KERNEL("max_pool2d backward", device, max_pool2d_backward<T>, g.data<T>(), argmax.data<int32_t>(),
                    gx.data<T>(), s);
    });
    return std::vector<Tensor>{gx};
  });
  return y;
}

Tensor adaptive_avg_pool2d(const Tensor& x, int out_h, int out_w, Layout layout) {
  constexpr const char* op = "adaptive_avg_pool2d";
  check_dim(op, dims_name("x", layout).c_str(), x, 4);
  check_storage(op, "x", x);
  ENGINE_CHECK(out_h > 0 && out_w > 0, op, ": output size must be positive, got ", out_h, "x", out_w);
  const Dims4 d = dims4(x, layout);
  ENGINE_CHECK(d.h > 0 && d.w > 0, op, ": x of shape ", shape_str(x.shape()), " has an empty plane");
  kernels::AdaptivePool2dShape s;
  s.planes = d.n * d.c;
  s.h = d.h;
  s.w = d.w;
  s.out_h = out_h;
  s.out_w = out_w;
  s.layout = layout;
  s.c = d.c;
  Tensor y = Tensor::empty(shape4(d.n, d.c, s.out_h, s.out_w, layout), x.dtype(), x.device());
  dispatch_storage(op, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    ENGINE_KERNEL(op, x, adaptive_avg_pool2d_forward<T>, x.data<T>(), y.data<T>(), s);
  });
  const Shape in_shape = x.shape();
  const DType dtype = x.dtype();
  const Device device = x.device();
  record(y, op, {x}, [s, in_shape, dtype, device](const Tensor& g, const std::vector<bool>&) {
    Tensor gx = Tensor::empty(in_shape, dtype, device);
    dispatch_storage("adaptive_avg_pool2d backward", dtype, [&](auto tag) {
      using T = decltype(tag);
      ENGINE_KERNEL("adaptive_avg_pool2d backward", device, adaptive_avg_pool2d_backward<T>, g.data<T>(), gx.data<T>(),
                    s);
    });
    return std::vector<Tensor>{gx};
  });
  return y;
}

}  // namespace engine
