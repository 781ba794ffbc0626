// Channels-last (NHWC) convolution on the GPU, the twin of kernels/cpu/conv_nhwc.cpp (scheme in kernels/conv.h):
// pointwise convolutions are one cuBLAS GEMM over the whole batch (rows = pixels, no im2col, no scratch); the
// others run chunks of NHWC im2col + one GEMM that writes y in place. im2col has one thread per column element,
// so neighbouring threads read neighbouring channels of a pixel (coalesced); col2im is a gather, one thread per
// input element summing the column entries that read it: no atomics, deterministic. bf16 goes through the same
// cuBLAS wrapper (cublasGemmEx, float compute). Index arithmetic in the kernels is 32-bit where the host has
// checked that a chunk fits, pointer offsets 64-bit.
#include <algorithm>
#include <climits>

#include "kernels/check.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/conv_kernels.cuh"
#include "kernels/cuda/conv_nhwc.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/gemm.h"

namespace kernels::cuda::nhwc {
namespace {

constexpr int kBlock = conv_kernels::kBlock;

void check_index_range(const Conv2dShape& s, int64_t nb) {
  const int64_t P = s.out_pixels();
  const int64_t largest = std::max({s.ckk() * nb * P, s.oc * nb * P, nb * s.c * s.h * s.w, s.n * P});
  KERNELS_CHECK(largest <= INT_MAX, "conv2d (CUDA, NHWC): one image of input [", s.h, ", ", s.w, ", ", s.c,
                "] with kernel ", s.kh, "x", s.kw, " needs ", largest,
                " scratch elements, more than the 32-bit indexing of these kernels allows; use smaller images");
}

// col [NP, K], K = KH*KW*C, element (r, (a*KW + b)*C + c) = x[img, oh*sh - ph + a, ow*sw - pw + b, c] or 0.
template <class T>
__global__ void im2col_kernel(const T* __restrict__ x, T* __restrict__ col, int total, int K, int P, int C, int H,
                              int W, int KW, int sh, int sw, int ph, int pw, int OW) {
  CUDA_KERNEL_LOOP(i64, total) {
    const int i = int(i64);
    const int k = i % K, r = i / K;
    const int c = k % C, tap = k / C;
    const int b = tap % KW, a = tap / KW;
    const int img = r / P, p = r - img * P;
    const int oh = p / OW, ow = p - oh * OW;
    const int ih = oh * sh - ph + a, iw = ow * sw - pw + b;
    col[i] =
        (ih >= 0 && ih < H && iw >= 0 && iw < W) ? x[((int64_t(img) * H + ih) * W + iw) * C + c] : to_storage<T>(0);
  }
}

template <class T>
__global__ void col2im_kernel(const T* __restrict__ col, T* __restrict__ x, int total, int K, int P, int C, int H,
                              int W, int KH, int KW, int sh, int sw, int ph, int pw, int OH, int OW) {
  CUDA_KERNEL_LOOP(i64, total) {
    const int i = int(i64);
    const int c = i % C;
    int t = i / C;
    const int iw = t % W;
    t /= W;
    const int ih = t % H, img = t / H;
    const T* cp = col + int64_t(img) * P * K + c;
    compute_t<T> sum = 0;
    for_each_reading_tap(ih, iw, KH, KW, sh, sw, ph, pw, OH, OW, [&](int a, int b, int oh, int ow) {
      sum += to_compute(cp[int64_t(oh * OW + ow) * K + (a * KW + b) * C]);
    });
    x[i] = to_storage<T>(sum);
  }
}

template <class T>
__global__ void add_bias_kernel(const T* __restrict__ bias, T* __restrict__ y, int64_t total, int64_t OC) {
  CUDA_KERNEL_LOOP(i, total) y[i] = to_storage<T>(to_compute(y[i]) + to_compute(bias[i % OC]));
}

// The convolution with no crop left to do (kernels/conv.h, NHWC): y [rows, OC] = col [rows, K] x W^T.
template <class T>
void forward_impl(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y) {
  const int64_t P = s.out_pixels(), K = s.ckk(), OC = s.oc, in_img = s.h * s.w * s.c, out_img = P * OC;
  const compute_t<T> one = 1, zero = 0;
  if (s.pointwise()) {
    gemm<T>(false, true, s.n * P, OC, K, one, x, K, w, K, zero, y, OC);  // x [N*H*W, C] is col itself
  } else {
    const int64_t chunk = conv_chunk_images(s, kCudaConvChunkElems);
    check_index_range(s, chunk);
    DeviceBuffer<T> col;
    for (int64_t n0 = 0; n0 < s.n; n0 += chunk) {
      const int64_t nb = std::min(chunk, s.n - n0), NP = nb * P;
      col.reset(NP * K);
      im2col(s, x + n0 * in_img, nb, col.get());
      gemm<T>(false, true, NP, OC, K, one, col.get(), K, w, K, zero, y + n0 * out_img, OC);
    }
  }
  if (bias) add_bias(s, bias, y);
}

// gw is overwritten (summed over the chunks by WeightGradSum); w is read only for gx.
template <class T>
void backward_impl(const Conv2dShape& s, const T* x, const T* w, const T* gy, T* gx, T* gw) {
  const int64_t P = s.out_pixels(), K = s.ckk(), OC = s.oc, in_img = s.h * s.w * s.c, out_img = P * OC;
  const compute_t<T> one = 1, zero = 0;
  if (s.pointwise()) {
    const int64_t R = s.n * P;
    if (gw) gemm<T>(true, false, OC, K, R, one, gy, OC, x, K, zero, gw, K);   // gW [OC, C] = gy^T x
    if (gx) gemm<T>(false, false, R, K, OC, one, gy, OC, w, K, zero, gx, K);  // gx [R, C] = gy W
    return;
  }
  const int64_t chunk = conv_chunk_images(s, kCudaConvChunkElems);
  check_index_range(s, chunk);
  // One buffer for col (the gW GEMM) and then gcol: everything runs in order on the one stream.
  DeviceBuffer<T> buf;
  conv_kernels::WeightGradSum<T> gw_sum(gw, OC * K, chunk < s.n);
  for (int64_t n0 = 0; n0 < s.n; n0 += chunk) {
    const int64_t nb = std::min(chunk, s.n - n0), NP = nb * P;
    const T* gyc = gy + n0 * out_img;
    buf.reset(NP * K);
    if (gw) {
      im2col(s, x + n0 * in_img, nb, buf.get());
      gw_sum.add(true, false, OC, K, NP, gyc, OC, buf.get(), K, n0 == 0, K);
    }
    if (gx) {
      gemm<T>(false, false, NP, K, OC, one, gyc, OC, w, K, zero, buf.get(), K);  // gcol = gy W
      col2im(s, buf.get(), nb, gx + n0 * in_img);
    }
  }
  if (gw) gw_sum.finish();
}

}  // namespace

template <class T>
void im2col(const Conv2dShape& s, const T* x, int64_t nb, T* col) {
  check_index_range(s, nb);
  const int64_t P = s.out_pixels(), K = s.ckk(), total = nb * P * K;
  if (total == 0) return;
  im2col_kernel<<<grid_for(total, kBlock), kBlock, 0, stream()>>>(
      x, col, int(total), int(K), int(P), int(s.c), int(s.h), int(s.w), int(s.kw), int(s.stride_h), int(s.stride_w),
      int(s.pad_h), int(s.pad_w), int(s.ow));
  CUDA_CHECK_LAUNCH();
}

template <class T>
void col2im(const Conv2dShape& s, const T* col, int64_t nb, T* x) {
  check_index_range(s, nb);
  const int64_t total = nb * s.h * s.w * s.c;
  if (total == 0) return;
  col2im_kernel<<<grid_for(total, kBlock), kBlock, 0, stream()>>>(
      col, x, int(total), int(s.ckk()), int(s.out_pixels()), int(s.c), int(s.h), int(s.w), int(s.kh), int(s.kw),
      int(s.stride_h), int(s.stride_w), int(s.pad_h), int(s.pad_w), int(s.oh), int(s.ow));
  CUDA_CHECK_LAUNCH();
}

template <class T>
void add_bias(const Conv2dShape& s, const T* bias, T* y) {
  const int64_t total = s.n * s.out_pixels() * s.oc;
  if (total == 0) return;
  add_bias_kernel<<<grid_for(total, kBlock), kBlock, 0, stream()>>>(bias, y, total, s.oc);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void bias_grad(const Conv2dShape& s, const T* gy, T* gb) {
  if (s.oc == 0) return;
  check_index_range(s, 1);
  conv_kernels::bias_grad<<<unsigned(s.oc), kBlock, 0, stream()>>>(gy, gb, int(s.n * s.out_pixels()), 1, int(s.oc));
  CUDA_CHECK_LAUNCH();
}

template <class T>
void conv2d_forward(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y) {
  if (s.n == 0) return;
  conv_kernels::with_live_taps(s, w, [&](const Conv2dShape& sc, const T* wc) { forward_impl(sc, x, wc, bias, y); });
}

template <class T>
void conv2d_backward(const Conv2dShape& s, const T* x, const T* w, const T* gy, T* gx, T* gw, T* gb) {
  if (gb) bias_grad(s, gy, gb);
  if (!gx && !gw) return;
  if (s.n == 0) {
    if (gw) memset_zero(gw, sizeof(T) * s.oc * s.ckk());
    return;
  }
  // The weight is read for gx only, so a caller wanting gW alone may pass none.
  conv_kernels::with_live_taps_backward(s, w, gw, gx != nullptr, [&](const Conv2dShape& sc, const T* wc, T* gwc) {
    backward_impl(sc, x, wc, gy, gx, gwc);
  });
}

KERNELS_FOR_EACH_STORAGE(KERNELS_CONV_NHWC_CUDA_INSTANTIATE)

}  // namespace kernels::cuda::nhwc
