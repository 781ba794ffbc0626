#include "kernels/elementwise.h"

#include "engine/ops.h"
#include "engine/ops/common.h"
#include "kernels/relu.h"

namespace engine {

Tensor add(const Tensor& a, const Tensor& b) {
  check_defined("add", "a", a);
  check_defined("add", "b", b);
  check_storage("add", "a", a);
  check_same("add", {{"a", a}, {"b", b}});
  ENGINE_CHECK(a.shape() == b.shape(), "add: shapes differ: ", shape_str(a.shape()), " vs ", shape_str(b.shape()),
               " (no broadcasting)");
  Tensor y = Tensor::empty(a.shape(), a.dtype(), a.device());
  dispatch_storage("add", a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    ENGINE_KERNEL("add", a, add<T>, a.data<T>(), b.data<T>(), y.data<T>(), a.numel());
  });
  record(y, "add", {a, b}, [](const Tensor& g, const std::vector<bool>&) { return std::vector<Tensor>{g, g}; });
  return y;
}

Tensor scale(const Tensor& x, double alpha) {
  check_storage("scale", "x", x);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  dispatch_storage("scale", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    ENGINE_KERNEL("scale", x, scale<T>, x.data<T>(), kernels::compute_t<T>(alpha), y.data<T>(), x.numel());
  });
  record(y, "scale", {x},
         [alpha](const Tensor& g, const std::vector<bool>&) { return std::vector<Tensor>{scale(g, alpha)}; });
  return y;
}

Tensor relu(const Tensor& x) {
  check_storage("relu", "x", x);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  dispatch_storage("relu", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    ENGINE_KERNEL("relu", x, relu_forward<T>, x.data<T>(), y.data<T>(), x.numel());
  });
  // The mask is read from the input (y > 0 iff x > 0), so the closure never holds the output.
  record(y, "relu", {x}, [x](const Tensor& g, const std::vector<bool>&) {
    Tensor gx = Tensor::empty(x.shape(), x.dtype(), x.device());
    dispatch_storage("relu backward", x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      ENGINE_KERNEL("relu backward", x, relu_backward<T>, x.data<T>(), g.data<T>(), gx.data<T>(), x.numel());
    });
    return std::vector<Tensor>{gx};
  });
  return y;
}

Tensor cast(const Tensor& x, DType dtype) {
  check_storage("cast", "x", x);
  ENGINE_CHECK(dtype != DType::i32, "cast: to int32 is not differentiable; use Tensor::to(DType::i32)");
  if (x.dtype() == dtype) return x;
  Tensor y = x.to(dtype);
  const DType from = x.dtype();
  record(y, "cast", {x}, [from](const Tensor& g, const std::vector<bool>&) { return std::vector<Tensor>{g.to(from)}; });
  return y;
}

Tensor cast_precomputed(const Tensor& x, const Tensor& converted, bool channels_last) {
  check_storage("cast", "x", x);
  check_storage("cast", "converted", converted);
  ENGINE_CHECK(!channels_last || x.dim() == 4, "cast: a channels-last precomputed result needs a 4-D x, got ", x.str());
  const Shape want = channels_last ? channels_last_shape(x.shape()) : x.shape();
  ENGINE_CHECK(converted.shape() == want && converted.dtype() != x.dtype() && converted.device() == x.device(),
               "cast: a precomputed result ", converted.str(), " is no conversion of ", x.str(),
               channels_last ? " in channels-last order" : "");
  Tensor y = converted.detach();  // a handle of its own: the node recorded below must not land on the cache
  const DType from = x.dtype();
  record(y, channels_last ? "cast (channels last)" : "cast", {x},
         [from, channels_last](const Tensor& g, const std::vector<bool>&) {
           // Permuted back while still narrow (half the bytes of the float32 gradient), then converted.
           return std::vector<Tensor>{(channels_last ? to_channels_first(g) : g).to(from)};
         });
  return y;
}

Tensor flatten(const Tensor& x) {
  check_defined("flatten", "x", x);
  ENGINE_CHECK(x.dim() >= 1, "flatten: needs at least one dimension, got a scalar");
  return x.reshape({x.size(0), -1});
}

}  // namespace engine
