// Device kernels shared by the NCHW (conv.cu) and NHWC (conv_nhwc.cu) CUDA convolutions. One weight layout,
// [outer, KH, KW, inner], covers both (NCHW [OC, C, KH, KW]: outer = OC*C, inner = 1; NHWC [OC, KH, KW, C]:
// outer = OC, inner = C), and one output-gradient layout, [outer, OC, inner], both bias gradients (NCHW: outer =
// N, inner = OH*OW; NHWC: outer = N*OH*OW, inner = 1).
#pragma once
#include "kernels/cuda/common.cuh"
#include "kernels/dtype.h"

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

}  // namespace kernels::cuda::conv_kernels
