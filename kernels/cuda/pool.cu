// CUDA pooling: one thread per output element forward, one thread per input element backward. Backward gathers
// from the outputs whose windows contain the input (pool_outputs_of / adaptive_outputs_of in kernels/pool.h), in
// the same row-major order as the CPU scatter, so no atomics are needed and the sums are deterministic.
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/pool.h"

namespace kernels::cuda {
namespace {

constexpr int kBlock = 256;

template <class T>
__global__ void max_pool_forward_kernel(const T* __restrict__ x, T* __restrict__ y, int32_t* __restrict__ argmax,
                                        MaxPool2dShape s, int64_t total) {
  CUDA_KERNEL_LOOP(idx, total) {
    const int64_t ow = idx % s.out_w;
    const int64_t oh = (idx / s.out_w) % s.out_h;
    const int64_t p = idx / (s.out_w * s.out_h);
    const int64_t hs = oh * s.stride_h - s.pad_h, ws = ow * s.stride_w - s.pad_w;
    const int64_t h0 = hs > 0 ? hs : 0, w0 = ws > 0 ? ws : 0;
    const int64_t h1 = hs + s.kernel_h < s.h ? hs + s.kernel_h : s.h;
    const int64_t w1 = ws + s.kernel_w < s.w ? ws + s.kernel_w : s.w;
    const T* xp = x + p * s.h * s.w;
    using C = compute_t<T>;  // compared in, exactly: the maximum is one of the inputs (or NaN)
    C best = C(-INFINITY);
    int64_t best_i = h0 * s.w + w0;
    for (int64_t ih = h0; ih < h1; ++ih) {
      for (int64_t iw = w0; iw < w1; ++iw) {
        const C v = to_compute(xp[ih * s.w + iw]);
        if (v > best || isnan(v)) {  // NaN propagates, as in PyTorch
          best = v;
          best_i = ih * s.w + iw;
        }
      }
    }
    y[idx] = to_storage<T>(best);
    argmax[idx] = static_cast<int32_t>(best_i);
  }
}

template <class T>
__global__ void max_pool_backward_kernel(const T* __restrict__ gy, const int32_t* __restrict__ argmax,
                                         T* __restrict__ gx, MaxPool2dShape s, int64_t total) {
  CUDA_KERNEL_LOOP(idx, total) {
    const int64_t iw = idx % s.w;
    const int64_t ih = (idx / s.w) % s.h;
    const int64_t p = idx / (s.w * s.h);
    int64_t oh0, oh1, ow0, ow1;
    pool_outputs_of(ih, s.kernel_h, s.stride_h, s.pad_h, s.out_h, &oh0, &oh1);
    pool_outputs_of(iw, s.kernel_w, s.stride_w, s.pad_w, s.out_w, &ow0, &ow1);
    const int32_t self = static_cast<int32_t>(ih * s.w + iw);
    const int64_t base = p * s.out_h * s.out_w;
    compute_t<T> acc = 0;
    for (int64_t oh = oh0; oh < oh1; ++oh)
      for (int64_t ow = ow0; ow < ow1; ++ow) {
        const int64_t o = base + oh * s.out_w + ow;
        if (argmax[o] == self) acc += to_compute(gy[o]);
      }
    gx[idx] = to_storage<T>(acc);
  }
}

template <class T>
__global__ void adaptive_avg_forward_kernel(const T* __restrict__ x, T* __restrict__ y, AdaptivePool2dShape s,
                                            int64_t total) {
  CUDA_KERNEL_LOOP(idx, total) {
    const int64_t ow = idx % s.out_w;
    const int64_t oh = (idx / s.out_w) % s.out_h;
    const int64_t p = idx / (s.out_w * s.out_h);
    const int64_t h0 = adaptive_start(oh, s.h, s.out_h), h1 = adaptive_end(oh, s.h, s.out_h);
    const int64_t w0 = adaptive_start(ow, s.w, s.out_w), w1 = adaptive_end(ow, s.w, s.out_w);
    const T* xp = x + p * s.h * s.w;
    double sum = 0;  // as the CPU: float inputs agree to the last rounding
    for (int64_t ih = h0; ih < h1; ++ih)
      for (int64_t iw = w0; iw < w1; ++iw) sum += convert_value<double>(xp[ih * s.w + iw]);
    y[idx] = convert_value<T>(sum / double((h1 - h0) * (w1 - w0)));
  }
}

template <class T>
__global__ void adaptive_avg_backward_kernel(const T* __restrict__ gy, T* __restrict__ gx, AdaptivePool2dShape s,
                                             int64_t total) {
  CUDA_KERNEL_LOOP(idx, total) {
    const int64_t iw = idx % s.w;
    const int64_t ih = (idx / s.w) % s.h;
    const int64_t p = idx / (s.w * s.h);
    int64_t oh0, oh1, ow0, ow1;
    adaptive_outputs_of(ih, s.h, s.out_h, &oh0, &oh1);
    adaptive_outputs_of(iw, s.w, s.out_w, &ow0, &ow1);
    const T* gp = gy + p * s.out_h * s.out_w;
    using C = compute_t<T>;
    C acc = 0;
    for (int64_t oh = oh0; oh < oh1; ++oh) {
      const int64_t kh = adaptive_end(oh, s.h, s.out_h) - adaptive_start(oh, s.h, s.out_h);
      for (int64_t ow = ow0; ow < ow1; ++ow) {
        const int64_t kw = adaptive_end(ow, s.w, s.out_w) - adaptive_start(ow, s.w, s.out_w);
        acc += to_compute(gp[oh * s.out_w + ow]) / C(kh * kw);
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
  max_pool_forward_kernel<T><<<grid_for(total, kBlock), kBlock, 0, stream()>>>(x, y, argmax, s, total);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void max_pool2d_backward(const T* gy, const int32_t* argmax, T* gx, const MaxPool2dShape& s) {
  const int64_t total = s.planes * s.h * s.w;
  if (total == 0) return;
  max_pool_backward_kernel<T><<<grid_for(total, kBlock), kBlock, 0, stream()>>>(gy, argmax, gx, s, total);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void adaptive_avg_pool2d_forward(const T* x, T* y, const AdaptivePool2dShape& s) {
  const int64_t total = s.planes * s.out_h * s.out_w;
  if (total == 0) return;
  adaptive_avg_forward_kernel<T><<<grid_for(total, kBlock), kBlock, 0, stream()>>>(x, y, s, total);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void adaptive_avg_pool2d_backward(const T* gy, T* gx, const AdaptivePool2dShape& s) {
  const int64_t total = s.planes * s.h * s.w;
  if (total == 0) return;
  adaptive_avg_backward_kernel<T><<<grid_for(total, kBlock), kBlock, 0, stream()>>>(gy, gx, s, total);
  CUDA_CHECK_LAUNCH();
}

KERNELS_POOL_INSTANTIATIONS

}  // namespace kernels::cuda
