// Option-A shortcut (He et al. 2016, Sec. 4.2): a parameter-free identity that down-samples by taking every
// stride-th pixel (x[:, :, ::s, ::s]) and widens by zero channels. Input channel c lands in output channel
// c + pad_front; the other output channels are zero. Both directions are gathers, so no atomics are needed:
//  forward:  y[n, c, i, j] = x[n, c - pad_front, i*s, j*s]  where 0 <= c - pad_front < c_in, else 0
//  backward: gx[n, c, h, w] = gy[n, c + pad_front, h/s, w/s] where h % s == 0 and w % s == 0, else 0
// in either layout (ShortcutAParams::layout, kernels/layout.h): indices above are logical; with Layout::nhwc x, y,
// gy, gx are stored [N, H, W, C]. Pure copies and zeros, so the two layouts agree exactly.
#pragma once
#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/layout.h"

namespace kernels {

struct ShortcutAParams {
  int64_t n = 0, c_in = 0, h_in = 0, w_in = 0;
  int64_t c_out = 0, h_out = 0, w_out = 0;  // h_out = ceil(h_in / stride)
  int stride = 1;
  int pad_front = 0;  // zero channels before the copied ones; c_out - c_in - pad_front after
  Layout layout = Layout::nchw;
};

namespace cpu {
template <class T>
void shortcut_a_forward(const T* x, T* y, const ShortcutAParams& p);
template <class T>
void shortcut_a_backward(const T* gy, T* gx, const ShortcutAParams& p);
}  // namespace cpu
namespace cuda {
template <class T>
void shortcut_a_forward(const T* x, T* y, const ShortcutAParams& p);
template <class T>
void shortcut_a_backward(const T* gy, T* gx, const ShortcutAParams& p);
}  // namespace cuda

}  // namespace kernels

// The explicit instantiations that kernels/cpu/shortcut.cpp and kernels/cuda/shortcut.cu both compile, each inside its
// own namespace, for every storage type (kernels/dtype.h), so the two twins always provide the same set.
#define KERNELS_SHORTCUT_INSTANTIATE(T)                                      \
  template void shortcut_a_forward<T>(const T*, T*, const ShortcutAParams&); \
  template void shortcut_a_backward<T>(const T*, T*, const ShortcutAParams&);
#define KERNELS_SHORTCUT_INSTANTIATIONS KERNELS_FOR_EACH_STORAGE(KERNELS_SHORTCUT_INSTANTIATE)
