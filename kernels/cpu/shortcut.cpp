#include "kernels/shortcut.h"

namespace kernels::cpu {

template <class T>
void shortcut_a_forward(const T* x, T* y, const ShortcutAParams& p) {
  const int64_t planes = p.n * p.c_out;
#pragma omp parallel for if (planes * p.h_out * p.w_out > 65536)
  for (int64_t nc = 0; nc < planes; ++nc) {
    const int64_t n = nc / p.c_out, c = nc % p.c_out - p.pad_front;
    T* yp = y + nc * p.h_out * p.w_out;
    if (c < 0 || c >= p.c_in) {
      for (int64_t i = 0; i < p.h_out * p.w_out; ++i) yp[i] = to_storage<T>(0);
      continue;
    }
    const T* xp = x + (n * p.c_in + c) * p.h_in * p.w_in;
    for (int64_t i = 0; i < p.h_out; ++i)
      for (int64_t j = 0; j < p.w_out; ++j) yp[i * p.w_out + j] = xp[i * p.stride * p.w_in + j * p.stride];
  }
}

template <class T>
void shortcut_a_backward(const T* gy, T* gx, const ShortcutAParams& p) {
  const int64_t planes = p.n * p.c_in;
#pragma omp parallel for if (planes * p.h_in * p.w_in > 65536)
  for (int64_t nc = 0; nc < planes; ++nc) {
    const int64_t n = nc / p.c_in, c = nc % p.c_in + p.pad_front;
    const T* gp = gy + (n * p.c_out + c) * p.h_out * p.w_out;
    T* xp = gx + nc * p.h_in * p.w_in;
    for (int64_t h = 0; h < p.h_in; ++h)
      for (int64_t w = 0; w < p.w_in; ++w)
        xp[h * p.w_in + w] =
            (h % p.stride == 0 && w % p.stride == 0) ? gp[(h / p.stride) * p.w_out + w / p.stride] : to_storage<T>(0);
  }
}

KERNELS_SHORTCUT_INSTANTIATIONS

}  // namespace kernels::cpu
