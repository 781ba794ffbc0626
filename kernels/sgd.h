// SGD update, PyTorch semantics (torch.optim.SGD, dampening 0):
//   g = grad + weight_decay * w
//   buf = first_step ? g : momentum * buf + g          (only when momentum != 0)
//   step = nesterov ? g + momentum * buf : buf         (g itself when momentum == 0)
//   w -= lr * step
#pragma once
#include <cstdint>

namespace kernels {

struct SgdParams {
  double lr = 0.05, momentum = 0.0, weight_decay = 0.0;
  bool nesterov = false;
  bool first_step = false;  // momentum buffer not yet initialised
};

// One parameter tensor of n elements; buf may be null when momentum == 0.
struct SgdTensor {
  void* w = nullptr;
  const void* g = nullptr;
  void* buf = nullptr;
  int64_t n = 0;
};

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

// The explicit instantiations that kernels/cpu/sgd.cpp and kernels/cuda/sgd.cu both compile, each inside
// its own namespace, so the two twins always provide the same set.
#define KERNELS_SGD_INSTANTIATIONS                                          \
  template void sgd_update<float>(const SgdTensor*, int, const SgdParams&); \
  template void sgd_update<double>(const SgdTensor*, int, const SgdParams&);
