#include "kernels/ema.h"

namespace kernels::cpu {

template <class T>
void ema_update(const EmaTensor* tensors, int count, double decay) {
  const T keep = T(decay), take = T(1.0 - decay);
  for (int t = 0; t < count; ++t) {
    T* e = static_cast<T*>(tensors[t].ema);
    const T* w = static_cast<const T*>(tensors[t].w);
    const int64_t n = tensors[t].n;
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; ++i) e[i] = ema_value(e[i], w[i], keep, take);
  }
}

KERNELS_EMA_INSTANTIATIONS

}  // namespace kernels::cpu
