// Device kernels shared by the NCHW (conv.cu) and NHWC (conv_nhwc.cu) CUDA convolutions. One weight layout,
// [outer, KH, KW, inner], covers both (NCHW [OC, C, KH, KW]: outer = OC*C, inner = 1; NHWC [OC, KH, KW, C]:
// outer = OC, inner = C), and one output-gradient layout, [outer, OC, inner], both bias gradients (NCHW: outer =
// N, inner = OH*OW; NHWC: outer = N*OH*OW, inner = 1).
#pragma once
#include <climits>
#include <type_traits>

#include "kernels/check.h"
#include "kernels/conv.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/device_buffer.h"
#include "kernels/dtype.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"

namespace kernels::cuda::conv_kernels {

constexpr int kBlock = 256;  // threads per block of every launch below

// wc [outer, kh, kw, inner] = the taps of w from (i0, j0) (kernels/conv.h, LiveTaps).
template <class T>
__global__ void crop_weight(const T* __restrict__ w, T* __restrict__ wc, int total, int inner, int KH, int KW, int kh,
                            int kw, int i0, int j0) {
  CUDA_KERNEL_LOOP(i64, total) {
    const int i = int(i64);
    const int c = i % inner;
    int t = i / inner;
    const int b = t % kw;
    t /= kw;
    const int a = t % kh, o = t / kh;
    wc[i] = w[((int64_t(o) * KH + a + i0) * KW + b + j0) * inner + c];
  }
}

// The reverse for the weight gradient, over every element of gw: dead taps get 0.
template <class T>
__global__ void uncrop_weight_grad(const T* __restrict__ gwc, T* __restrict__ gw, int total, int inner, int KH, int KW,
                                   int kh, int kw, int i0, int j0) {
  CUDA_KERNEL_LOOP(i64, total) {
    const int i = int(i64);
    const int c = i % inner;
    int t = i / inner;
    const int b = t % KW - j0;
    t /= KW;
    const int a = t % KH - i0, o = t / KH;
    gw[i] =
        (a >= 0 && a < kh && b >= 0 && b < kw) ? gwc[((int64_t(o) * kh + a) * kw + b) * inner + c] : to_storage<T>(0);
  }
}

// One block (kBlock threads) per output channel sums gy[:, oc, :] in a fixed order (deterministic).
template <class T>
__global__ void bias_grad(const T* __restrict__ gy, T* __restrict__ gb, int outer, int inner, int OC) {
  __shared__ compute_t<T> partial[kBlock];
  const int oc = blockIdx.x, count = outer * inner;
  compute_t<T> sum = 0;
  for (int k = threadIdx.x; k < count; k += blockDim.x) {
    const int o = k / inner, p = k - o * inner;
    sum += to_compute(gy[(int64_t(o) * OC + oc) * inner + p]);
  }
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (int(threadIdx.x) < half) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) gb[oc] = to_storage<T>(partial[0]);
}

// The weight's inner extent in the layout above.
inline int weight_inner(const Conv2dShape& s) { return s.layout == Layout::nhwc ? int(s.c) : 1; }

// run(shape, weight): the convolution with the kernel cropped to its live taps when that saves work (kernels/conv.h,
// LiveTaps), else as given.
template <class T, class Run>
void with_live_taps(const Conv2dShape& s, const T* w, Run run) {
  const LiveTaps t = live_taps(s);
  if (!t.crops(s)) return run(s, w);
  const Conv2dShape sc = cropped(s, t);
  const int64_t count = sc.oc * sc.ckk();
  KERNELS_CHECK(s.oc * s.ckk() <= INT_MAX, "conv2d (CUDA): weight of ", s.oc * s.ckk(), " elements is too large");
  DeviceBuffer<T> wc(count);
  crop_weight<<<grid_for(count, kBlock), kBlock, 0, stream()>>>(
      w, wc.get(), int(count), weight_inner(s), int(s.kh), int(s.kw), int(sc.kh), int(sc.kw), int(t.i0), int(t.j0));
  CUDA_CHECK_LAUNCH();
  run(sc, wc.get());
}

// run(shape, weight, gw) for the backward: the same crop, and the cropped weight gradient spread back over every
// tap of gw (dead ones 0). need_w: whether run reads the weight (else it gets none).
template <class T, class Run>
void with_live_taps_backward(const Conv2dShape& s, const T* w, T* gw, bool need_w, Run run) {
  const LiveTaps t = live_taps(s);
  if (!t.crops(s)) return run(s, need_w ? w : nullptr, gw);
  const Conv2dShape sc = cropped(s, t);
  const int64_t count = sc.oc * sc.ckk(), full = s.oc * s.ckk();
  KERNELS_CHECK(full <= INT_MAX, "conv2d (CUDA): weight of ", full, " elements is too large");
  DeviceBuffer<T> wc, gwc;
  if (need_w) {
    wc.reset(count);
    crop_weight<<<grid_for(count, kBlock), kBlock, 0, stream()>>>(
        w, wc.get(), int(count), weight_inner(s), int(s.kh), int(s.kw), int(sc.kh), int(sc.kw), int(t.i0), int(t.j0));
    CUDA_CHECK_LAUNCH();
  }
  if (gw) gwc.reset(count);
  run(sc, need_w ? wc.get() : nullptr, gw ? gwc.get() : nullptr);
  if (gw) {
    uncrop_weight_grad<<<grid_for(full, kBlock), kBlock, 0, stream()>>>(
        gwc.get(), gw, int(full), weight_inner(s), int(s.kh), int(s.kw), int(sc.kh), int(sc.kw), int(t.i0), int(t.j0));
    CUDA_CHECK_LAUNCH();
  }
}

// A convolution's weight gradient summed over the batch's im2col chunks: gw += gy^T col per chunk. float and double
// sum in gw itself; bf16 with more than one chunk sums in a float buffer and rounds once (finish), as cuDNN and the
// CPU (which widens bf16 convolutions to float) do, instead of once per chunk.
template <class T>
class WeightGradSum {
 public:
  WeightGradSum(T* gw, int64_t count, bool several_chunks) : gw_(gw), count_(count) {
    if constexpr (std::is_same_v<T, bf16>)
      if (gw && several_chunks) acc_.reset(count);
  }
  // gw (+)= alpha op(a) op(b), the first call of the sum overwriting.
  void add(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b, int64_t ldb,
           bool first, int64_t ldc) {
    const compute_t<T> beta = first ? 0 : 1;
    if constexpr (std::is_same_v<T, bf16>)
      if (acc_.get()) return gemm_bf16_float(ta, tb, m, n, k, 1.f, a, lda, b, ldb, beta, acc_.get(), ldc);
    gemm<T>(ta, tb, m, n, k, compute_t<T>(1), a, lda, b, ldb, beta, gw_, ldc);
  }
  void finish() {
    if constexpr (std::is_same_v<T, bf16>)
      if (acc_.get()) convert(acc_.get(), gw_, count_);
  }

 private:
  T* gw_;
  int64_t count_;
  DeviceBuffer<float> acc_;
};

}  // namespace kernels::cuda::conv_kernels
