// The dtype axis of the kernels. A kernel's template parameter T is the STORAGE type of the tensors it streams
// (activations, their gradients, the weights as a layer reads them). It loads them into compute_t<T>, the type it
// computes and accumulates in, and rounds back to T once on store. Values that must stay precise whatever the
// storage are typed compute_t<T> in the interfaces: batch-norm affine parameters, statistics and their gradients,
// the loss, GEMM alpha/beta and scalar factors.
//
// float and double compute in themselves; bf16 (kernels/bf16.h) computes in float. Two lists below say which
// kernels take which: the activation kernels (conv, linear, batch norm, pooling, ReLU, add, the shortcut) take
// every storage type; the kernels that only ever see compute-typed tensors take float and double: parameters
// and their optimizer state (SGD, EMA: mixed precision keeps float masters), the loss and the batch metrics
// (logits are cast to float first, as PyTorch's autocast does) and the data pipeline (images are made in float).
#pragma once

#include "kernels/bf16.h"
#include "kernels/host_device.h"

namespace kernels {

template <class T>
struct Compute {
  using type = T;
};
template <>
struct Compute<bf16> {
  using type = float;
};
template <class T>
using compute_t = typename Compute<T>::type;

// convert_value<D>(v): the one place a value changes type, rounded to nearest even where D is narrower. Between
// the built-in types it is static_cast; bf16 has no conversion operators (kernels/bf16.h), so its cases go
// through its functions, and a type bf16 has no conversion for (an integer) does not compile.
namespace detail {
template <class D, class S>
struct ConvertValue {
  static KERNELS_HOST_DEVICE D run(S v) { return static_cast<D>(v); }
};
template <class D>
struct ConvertValue<D, bf16> {  // exact: via float, which holds every bf16 value
  static KERNELS_HOST_DEVICE D run(bf16 v) { return static_cast<D>(bf16_to_float(v)); }
};
template <>
struct ConvertValue<bf16, float> {
  static KERNELS_HOST_DEVICE bf16 run(float v) { return bf16_from_float(v); }
};
template <>
struct ConvertValue<bf16, double> {  // directly, not through float: that would round twice
  static KERNELS_HOST_DEVICE bf16 run(double v) { return bf16_from_double(v); }
};
template <>
struct ConvertValue<bf16, bf16> {
  static KERNELS_HOST_DEVICE bf16 run(bf16 v) { return v; }
};
}  // namespace detail

template <class D, class S>
KERNELS_HOST_DEVICE inline D convert_value(S v) {
  return detail::ConvertValue<D, S>::run(v);
}

template <class T>
KERNELS_HOST_DEVICE inline compute_t<T> to_compute(T v) {
  return convert_value<compute_t<T>>(v);
}
template <class T>
KERNELS_HOST_DEVICE inline T to_storage(compute_t<T> v) {
  return convert_value<T>(v);
}

}  // namespace kernels

// X(T) for every storage type the activation kernels are compiled for, and for the compute types (the top of this
// file says which kernels take which). Each kernel header's KERNELS_<NAME>_INSTANTIATE(T) is expanded through one
// of them by both twins (kernels/cpu/*.cpp, kernels/cuda/*.cu), so they provide the same set.
#define KERNELS_FOR_EACH_STORAGE(X) X(float) X(double) X(bf16)
#define KERNELS_FOR_EACH_COMPUTE(X) X(float) X(double)
