// Exponential moving average of weights (Polyak averaging as timm's ModelEmaV2):
//   ema = decay * ema + (1 - decay) * w
// over many tensors in one call, as the fused SGD update is.
#pragma once
#include <cstdint>

#include "kernels/dtype.h"

namespace kernels {

struct EmaTensor {
  void* ema = nullptr;
  const void* w = nullptr;
  int64_t n = 0;
};

// The update of one element, the single source of the math for the CPU and CUDA versions. `keep` = decay and
// `take` = 1 - decay, both rounded to T once by the caller.
#ifdef __CUDACC__
#define EMA_HD __host__ __device__
#else
#define EMA_HD
#endif
template <class T>
EMA_HD inline T ema_value(T ema, T w, T keep, T take) {
  return keep * ema + take * w;
}

namespace cpu {
template <class T>
void ema_update(const EmaTensor* tensors, int count, double decay);
}
namespace cuda {
// All tensors in a handful of launches (the table is split into chunks that fit a kernel argument).
template <class T>
void ema_update(const EmaTensor* tensors, int count, double decay);
}  // namespace cuda
}  // namespace kernels

// The explicit instantiations that kernels/cpu/ema.cpp and kernels/cuda/ema.cu both compile, each inside its own
// namespace, for every storage type (kernels/dtype.h), so the two twins always provide the same set.
#define KERNELS_EMA_INSTANTIATE(T) template void ema_update<T>(const EmaTensor*, int, double);
#define KERNELS_EMA_INSTANTIATIONS KERNELS_FOR_EACH_COMPUTE(KERNELS_EMA_INSTANTIATE)
