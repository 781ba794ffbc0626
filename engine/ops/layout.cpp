// to_channels_last / to_channels_first: the NCHW <-> NHWC permutes (kernels/layout.h), each the other's backward,
// and the names of the layouts.
#include "kernels/layout.h"

#include "engine/ops.h"
#include "engine/ops/common.h"

namespace engine {

const char* layout_name(Layout l) { return l == Layout::nhwc ? "nhwc" : "nchw"; }

Layout parse_layout(const std::string& name) {
  if (name == "nchw") return Layout::nchw;
  if (name == "nhwc") return Layout::nhwc;
  fail(cat("unknown layout '", name, "': expected nchw or nhwc (channels last)"));
}

namespace {

// to_nhwc: x is [N, C, H, W] and y [N, H, W, C]; otherwise the reverse.
Tensor permute4(const Tensor& x, bool to_nhwc) {
  const char* op = to_nhwc ? "to_channels_last" : "to_channels_first";
  check_dim(op, to_nhwc ? "x (N, C, H, W)" : "x (N, H, W, C)", x, 4);
  check_storage(op, "x", x);
  const kernels::Layout from = to_nhwc ? Layout::nchw : Layout::nhwc, to = to_nhwc ? Layout::nhwc : Layout::nchw;
  const Dims4 d = dims4(x, from);
  const Shape out = shape4(d.n, d.c, d.h, d.w, to);
  // One channel or one pixel: both orders are the same memory, so the permute is a reshape (autograd included).
  if (d.c == 1 || d.h * d.w == 1) return x.reshape(out);
  Tensor y = Tensor::empty(out, x.dtype(), x.device());
  const kernels::PermuteShape s{d.n, d.c, d.h, d.w};
  dispatch_storage(op, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (to_nhwc)
      ENGINE_KERNEL(op, x, nchw_to_nhwc<T>, x.data<T>(), y.data<T>(), s);
    else
      ENGINE_KERNEL(op, x, nhwc_to_nchw<T>, x.data<T>(), y.data<T>(), s);
  });
  record(y, op, {x},
         [to_nhwc](const Tensor& g, const std::vector<bool>&) { return std::vector<Tensor>{permute4(g, !to_nhwc)}; });
  return y;
}

}  // namespace

Tensor to_channels_last(const Tensor& x) { return permute4(x, true); }
Shape channels_last_shape(const Shape& s) {
  ENGINE_CHECK(s.size() == 4, "channels_last_shape: expected 4 dimensions, got ", shape_str(s));
  return shape4(s[0], s[1], s[2], s[3], Layout::nhwc);
}
Tensor to_channels_first(const Tensor& x) { return permute4(x, false); }

}  // namespace engine
