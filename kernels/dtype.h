// The dtype axis of the kernels. A kernel's template parameter T is the STORAGE type of the tensors it streams
// (activations, their gradients, the weights as a layer reads them). It loads them into compute_t<T>, the type it
// computes and accumulates in, and rounds back to T once on store. Values that must stay precise whatever the
// storage are typed compute_t<T> in the interfaces: batch-norm affine parameters, statistics and their gradients,
// the loss, GEMM alpha/beta and scalar factors.
//
// Today every storage type computes in itself (float -> float, double -> double): the axis changes no result.
// bf16 storage with float compute (the next step) is then: a bf16 type with round-to-nearest-even conversions,
// `template <> struct Compute<bf16> { using type = float; };`, one more entry in KERNELS_FOR_EACH_STORAGE, and the
// conversion kernels (elementwise.h's convert). The kernel bodies stay as they are.
#pragma once

#include "kernels/host_device.h"

namespace kernels {

template <class T>
struct Compute {
  using type = T;
};
template <class T>
using compute_t = typename Compute<T>::type;

template <class T>
KERNELS_HOST_DEVICE inline compute_t<T> to_compute(T v) {
  return static_cast<compute_t<T>>(v);
}
template <class T>
KERNELS_HOST_DEVICE inline T to_storage(compute_t<T> v) {
  return static_cast<T>(v);
}

}  // namespace kernels

// X(T) for every storage type the kernels are compiled for: each kernel header's KERNELS_<NAME>_INSTANTIATE(T) is
// expanded through this list by both twins (kernels/cpu/*.cpp, kernels/cuda/*.cu), so they provide the same set.
#define KERNELS_FOR_EACH_STORAGE(X) X(float) X(double)
