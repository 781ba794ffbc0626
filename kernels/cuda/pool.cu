// CUDA pooling: one thread per output element forward, one thread per input element backward. Backward gathers
// from the outputs whose windows contain the input (pool_outputs_of / adaptive_outputs_of in kernels/pool.h), in
// the same row-major order as the CPU scatter, so no atomics are needed and the sums are deterministic.
// NHWC (kNhwc): the same kernels with the channel as the fastest index of the thread's element (neighbouring
// threads read and write neighbouring channels) and a pixel stride of C; an element's terms come in the same order.
#include <cmath>

#include "kernels/check.h"
#include "kernels/cuda/common.cuh"
#include "kernels/pool.h"

namespace kernels::cuda {
namespace {

constexpr int kBlock = 256;

// Element idx of a [planes, H, W] tensor (NCHW) or of an [N, H, W, C] one (NHWC): p is the plane (NCHW) or the
// image (NHWC), pix the pixel in it, ch the channel (0 for NCHW) and stride the distance between pixels (1 or C).
// Any tensor of the same layout with P pixels per plane then holds (p, pixel q, ch) at (p * P + q) * stride + ch.
struct PlaneIndex {
  int64_t p, pix, ch, stride;
  __device__ int64_t at(int64_t plane_pixels, int64_t q) const { return (p * plane_pixels + q) * stride + ch; }
};
template <bool kNhwc>
__device__ inline PlaneIndex plane_index(int64_t idx, int64_t plane_pixels, int64_t c) {
  if constexpr (kNhwc) {
    const int64_t rest = idx / c, n = rest / plane_pixels;
    return {n, rest - n * plane_pixels, idx - rest * c, c};
  } else {
    const int64_t p = idx / plane_pixels;
    return {p, idx - p * plane_pixels, 0, 1};
  }
}

template <class T, bool kNhwc>
__global__ void max_pool_forward_kernel(const T* __restrict__ x, T* __restrict__ y, int32_t* __restrict__ argmax,
                                        MaxPool2dShape s, int64_t total) {
  CUDA_KERNEL_LOOP(idx, total) {
    const PlaneIndex o = plane_index<kNhwc>(idx, s.out_h * s.out_w, s.c);
    const int64_t ow = o.pix % s.out_w, oh = o.pix / s.out_w;
    const int64_t hs = oh * s.stride_h - s.pad_h, ws = ow * s.stride_w - s.pad_w;
    const int64_t h0 = hs > 0 ? hs : 0, w0 = ws > 0 ? ws : 0;
    const int64_t h1 = hs + s.kernel_h < s.h ? hs + s.kernel_h : s.h;
    const int64_t w1 = ws + s.kernel_w < s.w ? ws + s.kernel_w : s.w;
    using C = compute_t<T>;  // compared in, exactly: the maximum is one of the inputs (or NaN)
    C best = C(-INFINITY);
    int64_t best_i = h0 * s.w + w0;
    for (int64_t ih = h0; ih < h1; ++ih) {
      for (int64_t iw = w0; iw < w1; ++iw) {
        const C v = to_compute(x[o.at(s.h * s.w, ih * s.w + iw)]);
        if (v > best || (isnan(v) && !isnan(best))) {  // NaN propagates; the first one wins, as on the CPU
          best = v;
          best_i = ih * s.w + iw;
        }
      }
    }
    y[idx] = to_storage<T>(best);
    argmax[idx] = static_cast<int32_t>(best_i);
  }
}

template <class T, bool kNhwc>
__global__ void max_pool_backward_kernel(const T* __restrict__ gy, const int32_t* __restrict__ argmax,
                                         T* __restrict__ gx, MaxPool2dShape s, int64_t total) {
  CUDA_KERNEL_LOOP(idx, total) {
    const PlaneIndex in = plane_index<kNhwc>(idx, s.h * s.w, s.c);
    const int64_t iw = in.pix % s.w, ih = in.pix / s.w;
    int64_t oh0, oh1, ow0, ow1;
    pool_outputs_of(ih, s.kernel_h, s.stride_h, s.pad_h, s.out_h, &oh0, &oh1);
    pool_outputs_of(iw, s.kernel_w, s.stride_w, s.pad_w, s.out_w, &ow0, &ow1);
    const int32_t self = static_cast<int32_t>(ih * s.w + iw);
    compute_t<T> acc = 0;
    for (int64_t oh = oh0; oh < oh1; ++oh)
      for (int64_t ow = ow0; ow < ow1; ++ow) {
        const int64_t o = in.at(s.out_h * s.out_w, oh * s.out_w + ow);
        if (argmax[o] == self) acc += to_compute(gy[o]);
      }
    gx[idx] = to_storage<T>(acc);
  }
}

template <class T, bool kNhwc>
__global__ void adaptive_avg_forward_kernel(const T* __restrict__ x, T* __restrict__ y, AdaptivePool2dShape s,
                                            int64_t total) {
  CUDA_KERNEL_LOOP(idx, total) {
    const PlaneIndex o = plane_index<kNhwc>(idx, s.out_h * s.out_w, s.c);
    const int64_t ow = o.pix % s.out_w, oh = o.pix / s.out_w;
    const int64_t h0 = adaptive_start(oh, s.h, s.out_h), h1 = adaptive_end(oh, s.h, s.out_h);
    const int64_t w0 = adaptive_start(ow, s.w, s.out_w), w1 = adaptive_end(ow, s.w, s.out_w);
    double sum = 0;  // as the CPU: float inputs agree to the last rounding
    for (int64_t ih = h0; ih < h1; ++ih)
      for (int64_t iw = w0; iw < w1; ++iw) sum += convert_value<double>(x[o.at(s.h * s.w, ih * s.w + iw)]);
    y[idx] = convert_value<T>(sum / double((h1 - h0) * (w1 - w0)));
  }
}

template <class T, bool kNhwc>
__global__ void adaptive_avg_backward_kernel(const T* __restrict__ gy, T* __restrict__ gx, AdaptivePool2dShape s,
                                             int64_t total) {
  CUDA_KERNEL_LOOP(idx, total) {
    const PlaneIndex in = plane_index<kNhwc>(idx, s.h * s.w, s.c);
    const int64_t iw = in.pix % s.w, ih = in.pix / s.w;
    int64_t oh0, oh1, ow0, ow1;
    adaptive_outputs_of(ih, s.h, s.out_h, &oh0, &oh1);
    adaptive_outputs_of(iw, s.w, s.out_w, &ow0, &ow1);
    using C = compute_t<T>;
    C acc = 0;
    for (int64_t oh = oh0; oh < oh1; ++oh) {
      const int64_t kh = adaptive_end(oh, s.h, s.out_h) - adaptive_start(oh, s.h, s.out_h);
      for (int64_t ow = ow0; ow < ow1; ++ow) {
        const int64_t kw = adaptive_end(ow, s.w, s.out_w) - adaptive_start(ow, s.w, s.out_w);
        acc += to_compute(gy[in.at(s.out_h * s.out_w, oh * s.out_w + ow)]) / C(kh * kw);
      }
    }
    gx[idx] = to_storage<T>(acc);
  }
}

}  // namespace

template <class T>
void max_pool2d_forward(const T* x, T* y, int32_t* argmax, const MaxPool2dShape& s) {
  const int64_t total = s.planes * s.out_h * s.out_w;
  if (total == 0) return;
  KERNELS_CHECK(pool_channels_ok(s),
                "max_pool2d_forward: an NHWC shape needs its channel count c (a divisor of planes)");
  if (s.layout == Layout::nhwc)
    max_pool_forward_kernel<T, true><<<grid_for(total, kBlock), kBlock, 0, stream()>>>(x, y, argmax, s, total);
  else
    max_pool_forward_kernel<T, false><<<grid_for(total, kBlock), kBlock, 0, stream()>>>(x, y, argmax, s, total);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void max_pool2d_backward(const T* gy, const int32_t* argmax, T* gx, const MaxPool2dShape& s) {
  const int64_t total = s.planes * s.h * s.w;
  if (total == 0) return;
  KERNELS_CHECK(pool_channels_ok(s),
                "max_pool2d_backward: an NHWC shape needs its channel count c (a divisor of planes)");
  if (s.layout == Layout::nhwc)
    max_pool_backward_kernel<T, true><<<grid_for(total, kBlock), kBlock, 0, stream()>>>(gy, argmax, gx, s, total);
  else
    max_pool_backward_kernel<T, false><<<grid_for(total, kBlock), kBlock, 0, stream()>>>(gy, argmax, gx, s, total);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void adaptive_avg_pool2d_forward(const T* x, T* y, const AdaptivePool2dShape& s) {
  const int64_t total = s.planes * s.out_h * s.out_w;
  if (total == 0) return;
  KERNELS_CHECK(pool_channels_ok(s),
                "adaptive_avg_pool2d_forward: an NHWC shape needs its channel count c (a divisor of planes)");
  if (s.layout == Layout::nhwc)
    adaptive_avg_forward_kernel<T, true><<<grid_for(total, kBlock), kBlock, 0, stream()>>>(x, y, s, total);
  else
    adaptive_avg_forward_kernel<T, false><<<grid_for(total, kBlock), kBlock, 0, stream()>>>(x, y, s, total);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void adaptive_avg_pool2d_backward(const T* gy, T* gx, const AdaptivePool2dShape& s) {
  const int64_t total = s.planes * s.h * s.w;
  if (total == 0) return;
  KERNELS_CHECK(pool_channels_ok(s),
                "adaptive_avg_pool2d_backward: an NHWC shape needs its channel count c (a divisor of planes)");
  if (s.layout == Layout::nhwc)
    adaptive_avg_backward_kernel<T, true><<<grid_for(total, kBlock), kBlock, 0, stream()>>>(gy, gx, s, total);
  else
    adaptive_avg_backward_kernel<T, false><<<grid_for(total, kBlock), kBlock, 0, stream()>>>(gy, gx, s, total);
  CUDA_CHECK_LAUNCH();
}

KERNELS_POOL_INSTANTIATIONS

}  // namespace kernels::cuda
