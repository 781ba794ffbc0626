// SGD update, PyTorch semantics (torch.optim.SGD, dampening 0):
//   g = grad + weight_decay * w
//   buf = first_step ? g : momentum * buf + g          (only when momentum != 0)
//   step = nesterov ? g + momentum * buf : buf         (g itself when momentum == 0)
//   w -= lr * step
//   w_bf16 = bf16(w)                                    (only for a parameter with a bf16 copy; at the permuted
//                                                        index when the copy is a channels-last conv weight)
// The last line is mixed precision's: a float32 master's bf16 copy, which the layers read (engine/nn/layers.h
// param_for_input), is rounded (to nearest even, as engine::cast) from the new weight in the same pass, instead of
// a cast kernel re-reading every weight in the next forward.
#pragma once
#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/host_device.h"

namespace kernels {

struct SgdParams {
  // The learning rate: one element of the parameters' type T, in memory on their device (device memory for the
  // CUDA twin, read inside the kernel), not a value baked into the launch, so that a captured CUDA graph replays
  // with whatever rate the optimizer last wrote there (engine/optim/sgd.h set_lr). Never null.
  const void* lr = nullptr;
  double momentum = 0.0, weight_decay = 0.0;
  bool nesterov = false;
  bool first_step = false;  // momentum buffer not yet initialised
};

// One parameter tensor of n elements; buf may be null when momentum == 0; w_bf16 (n elements, on the same device)
// is null for a parameter without a bf16 copy.
struct SgdTensor {
  void* w = nullptr;
  const void* g = nullptr;
  void* buf = nullptr;
  int64_t n = 0;
  bf16* w_bf16 = nullptr;
  // The copy is stored channels last: w is [OC, C, KH, KW] and w_bf16 [OC, KH, KW, C] with bf16_c = C and
  // bf16_kk = KH * KW. 0: the copy has w's own layout.
  int64_t bf16_c = 0, bf16_kk = 0;
};

// Where element i of a [OC, C, KK] weight goes in its copy: i itself, or (oc * KK + t) * C + c for a channels-last
// copy (c > 0).
KERNELS_HOST_DEVICE inline int64_t bf16_copy_index(int64_t i, int64_t c, int64_t kk) {
  if (c == 0) return i;
  const int64_t t = i % kk, ci = (i / kk) % c, oc = i / (kk * c);
  return (oc * kk + t) * c + ci;
}

// Element i's update, the formula above: both twins run it. buf is read only when momentum != 0.
template <class T>
KERNELS_HOST_DEVICE inline void sgd_step(T* w, const T* grad, T* buf, bf16* w_bf16, int64_t i, int64_t i_bf16, T lr,
                                         T momentum, T weight_decay, bool nesterov, bool first_step) {
  T g = grad[i] + weight_decay * w[i];
  if (momentum != T(0)) {
    const T b = first_step ? g : momentum * buf[i] + g;
    buf[i] = b;
    g = nesterov ? g + momentum * b : b;
  }
  w[i] -= lr * g;
  if (w_bf16) w_bf16[i_bf16] = convert_value<bf16>(w[i]);
}

namespace cpu {
template <class T>
void sgd_update(const SgdTensor* tensors, int count, const SgdParams& p);
}
namespace cuda {
// All parameters in a handful of launches (the tensor table is split into chunks that fit a kernel argument).
template <class T>
void sgd_update(const SgdTensor* tensors, int count, const SgdParams& p);
}  // namespace cuda
}  // namespace kernels

// The explicit instantiations that kernels/cpu/sgd.cpp and kernels/cuda/sgd.cu both compile, each inside its own
// namespace, for every storage type (kernels/dtype.h), so the two twins always provide the same set.
#define KERNELS_SGD_INSTANTIATE(T) template void sgd_update<T>(const SgdTensor*, int, const SgdParams&);
#define KERNELS_SGD_INSTANTIATIONS KERNELS_FOR_EACH_COMPUTE(KERNELS_SGD_INSTANTIATE)
