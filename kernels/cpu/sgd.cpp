#include "kernels/sgd.h"

#include "kernels/check.h"

namespace kernels::cpu {

template <class T>
void sgd_update(const SgdTensor* tensors, int count, const SgdParams& p) {
  KERNELS_CHECK(p.lr, "sgd_update: no learning rate (SgdParams::lr is null)");
  const T lr = *static_cast<const T*>(p.lr), mom = T(p.momentum), wd = T(p.weight_decay);
  for (int t = 0; t < count; ++t) {
    T* w = static_cast<T*>(tensors[t].w);
    const T* grad = static_cast<const T*>(tensors[t].g);
    T* buf = static_cast<T*>(tensors[t].buf);
    bf16* low = tensors[t].w_bf16;
    const int64_t n = tensors[t].n, c = tensors[t].bf16_c, kk = tensors[t].bf16_kk;
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; ++i)
      sgd_step(w, grad, buf, low, i, low ? bf16_copy_index(i, c, kk) : i, lr, mom, wd, p.nesterov, p.first_step);
  }
}

KERNELS_SGD_INSTANTIATIONS

}  // namespace kernels::cpu
