// CPU option-A shortcut: OpenMP over (n, c) planes (NCHW) or output/input rows (NHWC, channels innermost).
#include "kernels/shortcut.h"

namespace kernels::cpu {
namespace {

template <class T>
void shortcut_a_forward_nhwc(const T* x, T* y, const ShortcutAParams& p) {
  const int64_t rows = p.n * p.h_out;
#pragma omp parallel for if (rows * p.w_out * p.c_out > 65536)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t n = r / p.h_out, i = r % p.h_out;
    for (int64_t j = 0; j < p.w_out; ++j) {
      T* yp = y + (r * p.w_out + j) * p.c_out;
      const T* xp = x + ((n * p.h_in + i * p.stride) * p.w_in + j * p.stride) * p.c_in;
      for (int64_t c = 0; c < p.c_out; ++c) {
        const int64_t ci = c - p.pad_front;
        yp[c] = ci < 0 || ci >= p.c_in ? to_storage<T>(0) : xp[ci];
      }
    }
  }
}

template <class T>
void shortcut_a_backward_nhwc(const T* gy, T* gx, const ShortcutAParams& p) {
  const int64_t rows = p.n * p.h_in;
#pragma omp parallel for if (rows * p.w_in * p.c_in > 65536)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t n = r / p.h_in, h = r % p.h_in;
    for (int64_t w = 0; w < p.w_in; ++w) {
      T* xp = gx + (r * p.w_in + w) * p.c_in;
      if (h % p.stride != 0 || w % p.stride != 0) {
        for (int64_t c = 0; c < p.c_in; ++c) xp[c] = to_storage<T>(0);
        continue;
      }
      const T* gp = gy + ((n * p.h_out + h / p.stride) * p.w_out + w / p.stride) * p.c_out + p.pad_front;
      for (int64_t c = 0; c < p.c_in; ++c) xp[c] = gp[c];
    }
  }
}

}  // namespace

template <class T>
void shortcut_a_forward(const T* x, T* y, const ShortcutAParams& p) {
  if (p.layout == Layout::nhwc) return shortcut_a_forward_nhwc(x, y, p);
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
  if (p.layout == Layout::nhwc) return shortcut_a_backward_nhwc(gy, gx, p);
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
