// The layout axis of the activation kernels, and the kernel that converts between the two layouts.
//
// Layout is the memory order of a 4-D activation tensor [N, C, H, W]: nchw (the default, what the engine's tensors
// use) or nhwc (channels last: a pixel's C values are contiguous). The shape structs of the kernels that have both
// forms carry it as a field, so the CPU and CUDA twins keep one signature each: Conv2dShape (kernels/conv.h),
// BatchNormShape (kernels/batch_norm.h), MaxPool2dShape and AdaptivePool2dShape (kernels/pool.h) and
// ShortcutAParams (kernels/shortcut.h).
//
// nchw_to_nhwc / nhwc_to_nchw: the 4-D permute y[n, h, w, c] = x[n, c, h, w] and its inverse (for the model's input
// and for tests). A permute only moves values, so it is exact in every storage type; the backward of each is the
// other. CPU: one image at a time as a [C, H*W] <-> [H*W, C] transpose in cache-sized tiles; CUDA: the same
// transpose through a 32x32 shared-memory tile, so reads and writes both coalesce.
#pragma once
#include <cstdint>

#include "kernels/dtype.h"

namespace kernels {

enum class Layout {
  nchw,  // [N, C, H, W]
  nhwc,  // [N, H, W, C] (channels last)
};

struct PermuteShape {
  int64_t n = 0, c = 0, h = 0, w = 0;  // the logical sizes, whichever layout x is in
};

namespace cpu {
template <class T>
void nchw_to_nhwc(const T* x, T* y, const PermuteShape& s);
template <class T>
void nhwc_to_nchw(const T* x, T* y, const PermuteShape& s);
}  // namespace cpu

namespace cuda {
template <class T>
void nchw_to_nhwc(const T* x, T* y, const PermuteShape& s);
template <class T>
void nhwc_to_nchw(const T* x, T* y, const PermuteShape& s);
}  // namespace cuda

}  // namespace kernels

// The explicit instantiations that kernels/cpu/layout.cpp and kernels/cuda/layout.cu both compile, each inside its
// own namespace, for every storage type (kernels/dtype.h), so the two twins always provide the same set.
#define KERNELS_LAYOUT_INSTANTIATE(T)                               \
  template void nchw_to_nhwc<T>(const T*, T*, const PermuteShape&); \
  template void nhwc_to_nchw<T>(const T*, T*, const PermuteShape&);
#define KERNELS_LAYOUT_INSTANTIATIONS KERNELS_FOR_EACH_STORAGE(KERNELS_LAYOUT_INSTANTIATE)
