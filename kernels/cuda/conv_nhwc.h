// The channels-last (NHWC) half of the CUDA convolution, called by kernels/cuda/conv.cu when
// Conv2dShape::layout is Layout::nhwc (the scheme is at the top of kernels/conv.h). Internal to the CUDA kernels:
// callers use kernels::cuda::conv2d_forward etc., which dispatch here, with the contract of kernels/conv.h.
#pragma once
#include <cstdint>

#include "kernels/conv.h"

namespace kernels::cuda::nhwc {

template <class T>
void im2col(const Conv2dShape& s, const T* x, int64_t nb, T* col);
template <class T>
void col2im(const Conv2dShape& s, const T* col, int64_t nb, T* x);
template <class T>
void add_bias(const Conv2dShape& s, const T* bias, T* y);
template <class T>
void bias_grad(const Conv2dShape& s, const T* gy, T* gb);
template <class T>
void conv2d_forward(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y);
template <class T>
void conv2d_backward(const Conv2dShape& s, const T* x, const T* w, const T* gy, T* gx, T* gw, T* gb);

}  // namespace kernels::cuda::nhwc

#define KERNELS_CONV_NHWC_CUDA_INSTANTIATE(T)                                            \
  template void im2col<T>(const Conv2dShape&, const T*, int64_t, T*);                    \
  template void col2im<T>(const Conv2dShape&, const T*, int64_t, T*);                    \
  template void add_bias<T>(const Conv2dShape&, const T*, T*);                           \
  template void bias_grad<T>(const Conv2dShape&, const T*, T*);                          \
  template void conv2d_forward<T>(const Conv2dShape&, const T*, const T*, const T*, T*); \
  template void conv2d_backward<T>(const Conv2dShape&, const T*, const T*, const T*, T*, T*, T*);
