#include "kernels/shortcut.h"

#include "engine/ops.h"
#include "engine/ops/common.h"

namespace engine {

Tensor shortcut_a(const Tensor& x, int out_channels, int stride, int pad_front, Layout layout) {
  check_dim("shortcut_a", dims_name("x", layout).c_str(), x, 4);
  check_storage("shortcut_a", "x", x);
  const Dims4 d = dims4(x, layout);
  const int64_t c_in = d.c;
  ENGINE_CHECK(stride >= 1, "shortcut_a: stride must be >= 1, got ", stride);
  ENGINE_CHECK(pad_front >= 0 && pad_front + c_in <= out_channels, "shortcut_a: input ", shape_str(x.shape()),
               " with pad_front ", pad_front, " does not fit in ", out_channels,
               " output channels (need 0 <= pad_front <= out_channels - C)");
  kernels::ShortcutAParams p;
  p.n = d.n;
  p.c_in = c_in;
  p.h_in = d.h;
  p.w_in = d.w;
  p.c_out = out_channels;
  p.h_out = (p.h_in + stride - 1) / stride;
  p.w_out = (p.w_in + stride - 1) / stride;
  p.stride = stride;
  p.pad_front = pad_front;
  p.layout = layout;

  Tensor y = Tensor::empty(shape4(p.n, p.c_out, p.h_out, p.w_out, layout), x.dtype(), x.device());
  dispatch_storage("shortcut_a", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    ENGINE_KERNEL("shortcut_a", x, shortcut_a_forward<T>, x.data<T>(), y.data<T>(), p);
  });
  record(y, "shortcut_a", {x}, [p, shape = x.shape()](const Tensor& g, const std::vector<bool>&) {
    Tensor gx = Tensor::empty(shape, g.dtype(), g.device());
    dispatch_storage("shortcut_a backward", g.dtype(), [&](auto tag) {
      using T = decltype(tag);
      ENGINE_KERNEL("shortcut_a backward", g, shortcut_a_backward<T>, g.data<T>(), gx.data<T>(), p);
    });
    return std::vector<Tensor>{gx};
  });
  return y;
}

}  // namespace engine
