// The channels-last (NHWC) half of the CPU convolution, called by kernels/cpu/conv.cpp when
// Conv2dShape::layout is Layout::nhwc (the scheme is at the top of kernels/conv.h). Internal to the CPU kernels:
// the engine and the tests call kernels::cpu::conv2d_forward etc., which dispatch here.
#pragma once
#include <cstdint>

#include "kernels/conv.h"

namespace kernels::cpu::nhwc {

// x [nb, H, W, C] -> col [nb*OH*OW, KH*KW*C]; and its adjoint (overwrites x, each pixel a gather of its taps).
template <class T>
void im2col(const Conv2dShape& s, const T* x, int64_t nb, T* col);
template <class T>
void col2im(const Conv2dShape& s, const T* col, int64_t nb, T* x);
// y[n, :, :, oc] += bias[oc];  gb[oc] = sum of gy[n, :, :, oc]
template <class T>
void add_bias(const Conv2dShape& s, const T* bias, T* y);
template <class T>
void bias_grad(const Conv2dShape& s, const T* gy, T* gb);
// w [OC, KH, KW, C] -> the live taps [OC, i1 - i0, j1 - j0, C]; the reverse for the gradient (dead taps 0).
template <class T>
void crop_weight(const Conv2dShape& s, const LiveTaps& t, const T* w, T* wc);
template <class T>
void uncrop_weight_grad(const Conv2dShape& s, const LiveTaps& t, const T* gwc, T* gw);
// The convolution with no crop left to do: pointwise as one GEMM over the batch, else chunks of im2col + GEMM.
// Forward adds the bias (may be null); backward leaves gb to the caller; gx or gw may be null.
template <class T>
void forward(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y);
template <class T>
void backward(const Conv2dShape& s, const T* x, const T* w, const T* gy, T* gx, T* gw);

}  // namespace kernels::cpu::nhwc

#define KERNELS_CONV_NHWC_INSTANTIATE(T)                                           \
  template void im2col<T>(const Conv2dShape&, const T*, int64_t, T*);              \
  template void col2im<T>(const Conv2dShape&, const T*, int64_t, T*);              \
  template void add_bias<T>(const Conv2dShape&, const T*, T*);                     \
  template void bias_grad<T>(const Conv2dShape&, const T*, T*);                    \
  template void crop_weight<T>(const Conv2dShape&, const LiveTaps&, const T*, T*); \
  template void uncrop_weight_grad<T>(const Conv2dShape&, const LiveTaps&, const T*, T*);
#define KERNELS_CONV_NHWC_GEMM_INSTANTIATE(T)                                     \
  template void forward<T>(const Conv2dShape&, const T*, const T*, const T*, T*); \
  template void backward<T>(const Conv2dShape&, const T*, const T*, const T*, T*, T*);
