// 2-D pooling, every (n, c) plane independent, in either layout (the shapes' `layout`, kernels/layout.h): NCHW,
// x [N*C planes, H, W]; or NHWC (channels last), x [N, H, W, C], which needs the channel count `c` as well
// (planes = N * C in both). The formulas below hold in both; argmax keeps the index ih*W + iw within the plane in
// either layout (as PyTorch's channels_last indices), stored at the output's own position.
//  max_pool2d:  y[oh, ow] = max over the window rows oh*stride - pad + [0, kernel) (likewise columns), positions
//               outside the input count as -inf; argmax[oh, ow] = the winner's index ih*W + iw in its input
//               plane (the first one on ties; NaN wins, as in PyTorch). Backward: gx[argmax] += gy.
//  adaptive_avg_pool2d: window rows [floor(oh*H/OH), ceil((oh+1)*H/OH)) (likewise columns), y = window mean.
//               Backward: every input of the window gets gy / window size.
// Backward overwrites gx. The CPU scatters per plane; CUDA gathers per input element (no atomics, deterministic)
// using the inverse ranges below, which the CPU tests check against brute force. NHWC: the CPU splits by image
// (forward by output row) with the channels innermost; CUDA runs one thread per element with the channel as the
// fastest index, so neighbouring threads touch neighbouring channels (coalesced). Each output or input element
// sees its terms in the same order as in NCHW, so the two layouts agree exactly.
// adaptive_avg_pool2d to 1x1 gives [N, C] in either layout.
#pragma once
#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/host_device.h"
#include "kernels/layout.h"

namespace kernels {

struct MaxPool2dShape {
  int64_t planes = 0;  // N * C
  int64_t h = 0, w = 0, out_h = 0, out_w = 0;
  int kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
  Layout layout = Layout::nchw;
  int64_t c = 0;  // channels: needed with Layout::nhwc (a positive divisor of planes), unused with nchw
};

struct AdaptivePool2dShape {
  int64_t planes = 0;  // N * C
  int64_t h = 0, w = 0, out_h = 0, out_w = 0;
  Layout layout = Layout::nchw;
  int64_t c = 0;  // channels: needed with Layout::nhwc (a positive divisor of planes), unused with nchw
};

// An NHWC shape must say its channel count (the kernels check this before touching memory).
template <class S>
inline bool pool_channels_ok(const S& s) {
  return s.layout == Layout::nchw || (s.c > 0 && s.planes % s.c == 0);
}

// Adaptive window [start, end) of output index o along an axis of `in` inputs and `out` outputs.
KERNELS_HOST_DEVICE inline int64_t adaptive_start(int64_t o, int64_t in, int64_t out) { return o * in / out; }
KERNELS_HOST_DEVICE inline int64_t adaptive_end(int64_t o, int64_t in, int64_t out) {
  return ((o + 1) * in + out - 1) / out;
}
// The outputs whose adaptive window contains input i: [lo, hi). The same formula with the axes swapped.
KERNELS_HOST_DEVICE inline void adaptive_outputs_of(int64_t i, int64_t in, int64_t out, int64_t* lo, int64_t* hi) {
  *lo = adaptive_start(i, out, in);
  *hi = adaptive_end(i, out, in);
}

// The max-pool outputs whose window (o*stride - pad + [0, kernel)) contains input i: [lo, hi), clipped to
// [0, out).
KERNELS_HOST_DEVICE inline void pool_outputs_of(int64_t i, int kernel, int stride, int pad, int64_t out, int64_t* lo,
                                                int64_t* hi) {
  const int64_t ip = i + pad;
  *lo = ip < kernel ? 0 : (ip - kernel) / stride + 1;
  const int64_t h = ip / stride + 1;
  *hi = h < out ? h : out;
}

namespace cpu {
template <class T>
void max_pool2d_forward(const T* x, T* y, int32_t* argmax, const MaxPool2dShape& s);
template <class T>
void max_pool2d_backward(const T* gy, const int32_t* argmax, T* gx, const MaxPool2dShape& s);
template <class T>
void adaptive_avg_pool2d_forward(const T* x, T* y, const AdaptivePool2dShape& s);
template <class T>
void adaptive_avg_pool2d_backward(const T* gy, T* gx, const AdaptivePool2dShape& s);
}  // namespace cpu

namespace cuda {
template <class T>
void max_pool2d_forward(const T* x, T* y, int32_t* argmax, const MaxPool2dShape& s);
template <class T>
void max_pool2d_backward(const T* gy, const int32_t* argmax, T* gx, const MaxPool2dShape& s);
template <class T>
void adaptive_avg_pool2d_forward(const T* x, T* y, const AdaptivePool2dShape& s);
template <class T>
void adaptive_avg_pool2d_backward(const T* gy, T* gx, const AdaptivePool2dShape& s);
}  // namespace cuda

}  // namespace kernels

// The explicit instantiations that kernels/cpu/pool.cpp and kernels/cuda/pool.cu both compile, each inside its own
// namespace, for every storage type (kernels/dtype.h), so the two twins always provide the same set.
#define KERNELS_POOL_INSTANTIATE(T)                                                          \
  template void max_pool2d_forward<T>(const T*, T*, int32_t*, const MaxPool2dShape&);        \
  template void max_pool2d_backward<T>(const T*, const int32_t*, T*, const MaxPool2dShape&); \
  template void adaptive_avg_pool2d_forward<T>(const T*, T*, const AdaptivePool2dShape&);    \
  template void adaptive_avg_pool2d_backward<T>(const T*, T*, const AdaptivePool2dShape&);
#define KERNELS_POOL_INSTANTIATIONS KERNELS_FOR_EACH_STORAGE(KERNELS_POOL_INSTANTIATE)
