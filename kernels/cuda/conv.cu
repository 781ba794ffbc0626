// Convolution on the GPU: im2col/col2im and cuBLAS GEMMs as kernels/cpu/conv.cpp (see kernels/conv.h), except that
// chunks whose output planes have at least kBatchedMinPixels pixels run one GEMM per image (a single strided-batched
// call) that reads and writes NCHW directly, so no permute passes; pointwise convolutions then also skip im2col in
// the forward and col2im in the backward-data pass. im2col writes one column per thread-row (coalesced along output
// pixels); col2im is a gather, each input pixel summing the column entries that read it, so it needs no atomics and
// is deterministic. Index arithmetic inside the kernels is 32-bit (the host checks every chunk fits), pointer
// offsets are 64-bit. Channels-last (NHWC) shapes go to kernels/cuda/conv_nhwc.cu from each entry point.
#include <climits>

#include "kernels/check.h"
#include "kernels/conv.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/conv_kernels.cuh"
#include "kernels/cuda/conv_nhwc.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/gemm.h"

namespace kernels::cuda {
namespace {

constexpr int kBlock = conv_kernels::kBlock;
constexpr int64_t kChunkElems = kCudaConvChunkElems;  // kernels/conv.h

void check_index_range(const Conv2dShape& s, int64_t nb) {
  const int64_t P = s.out_pixels();
  const int64_t largest = std::max({s.ckk() * nb * P, s.oc * nb * P, nb * s.c * s.h * s.w, s.n * P});
  KERNELS_CHECK(largest <= INT_MAX, "conv2d (CUDA): one image of input [", s.c, ", ", s.h, ", ", s.w, "] with kernel ",
                s.kh, "x", s.kw, " needs ", largest,
                " scratch elements, more than the 32-bit indexing of these kernels allows; use smaller images");
}

template <class T>
__global__ void im2col_kernel(const T* __restrict__ x, T* __restrict__ col, int total, int NP, int P, int C, int H,
                              int W, int KH, int KW, int sh, int sw, int ph, int pw, int OW) {
  CUDA_KERNEL_LOOP(i64, total) {
    const int i = int(i64);
    const int j = i % NP;  // column: img * P + oh * OW + ow
    const int c = i / NP;
    const int img = j / P, p = j - img * P;
    const int oh = p / OW, ow = p - oh * OW;
    const int ih0 = oh * sh - ph, iw0 = ow * sw - pw;
    const T* xp = x + (int64_t(img) * C + c) * H * W;
    T* cp = col + int64_t(c) * KH * KW * NP + j;
    for (int a = 0; a < KH; ++a) {
      const int ih = ih0 + a;
      const bool row_ok = ih >= 0 && ih < H;
      for (int b = 0; b < KW; ++b) {
        const int iw = iw0 + b;
        *cp = (row_ok && iw >= 0 && iw < W) ? xp[ih * W + iw] : to_storage<T>(0);
        cp += NP;
      }
    }
  }
}

template <class T>
__global__ void col2im_kernel(const T* __restrict__ col, T* __restrict__ x, int total, int NP, int P, int C, int H,
                              int W, int KH, int KW, int sh, int sw, int ph, int pw, int OH, int OW) {
  CUDA_KERNEL_LOOP(i64, total) {
    const int i = int(i64);
    const int iw = i % W;
    int t = i / W;
    const int ih = t % H;
    t /= H;
    const int c = t % C, img = t / C;
    const T* cp = col + int64_t(c) * KH * KW * NP + int64_t(img) * P;
    compute_t<T> sum = 0;
    for_each_reading_tap(ih, iw, KH, KW, sh, sw, ph, pw, OH, OW, [&](int a, int b, int oh, int ow) {
      sum += to_compute(cp[int64_t(a * KW + b) * NP + oh * OW + ow]);
    });
    x[i] = to_storage<T>(sum);
  }
}

// out [OC, nb*P] -> y [nb, OC, P] (+ bias[oc])
template <class T>
__global__ void permute_out_kernel(const T* __restrict__ out, const T* __restrict__ bias, T* __restrict__ y, int total,
                                   int NP, int P, int OC) {
  CUDA_KERNEL_LOOP(i64, total) {
    const int i = int(i64);
    const int p = i % P;
    const int t = i / P;
    const int oc = t % OC, img = t / OC;
    y[i] = to_storage<T>(to_compute(out[int64_t(oc) * NP + img * P + p]) + (bias ? to_compute(bias[oc]) : 0));
  }
}

// gy [nb, OC, P] -> gy' [OC, nb*P]
template <class T>
__global__ void permute_grad_kernel(const T* __restrict__ gy, T* __restrict__ gyt, int total, int NP, int P, int OC) {
  CUDA_KERNEL_LOOP(i64, total) {
    const int i = int(i64);
    const int p = i % P;
    const int t = i / P;
    const int oc = t % OC, img = t / OC;
    gyt[int64_t(oc) * NP + img * P + p] = gy[i];
  }
}

template <class T>
__global__ void add_bias_kernel(const T* __restrict__ bias, T* __restrict__ y, int64_t total, int64_t P, int64_t OC) {
  CUDA_KERNEL_LOOP(i, total) y[i] = to_storage<T>(to_compute(y[i]) + to_compute(bias[(i / P) % OC]));
}

template <class T>
void permute_out(const Conv2dShape& s, const T* out, int64_t nb, const T* bias, T* y) {
  const int64_t P = s.out_pixels(), total = nb * s.oc * P;
  permute_out_kernel<<<grid_for(total, kBlock), kBlock, 0, stream()>>>(out, bias, y, int(total), int(nb * P), int(P),
                                                                       int(s.oc));
  CUDA_CHECK_LAUNCH();
}

template <class T>
void permute_grad(const Conv2dShape& s, const T* gy, int64_t nb, T* gyt) {
  const int64_t P = s.out_pixels(), total = nb * s.oc * P;
  permute_grad_kernel<<<grid_for(total, kBlock), kBlock, 0, stream()>>>(gy, gyt, int(total), int(nb * P), int(P),
                                                                        int(s.oc));
  CUDA_CHECK_LAUNCH();
}

}  // namespace

template <class T>
void im2col(const Conv2dShape& s, const T* x, int64_t nb, T* col) {
  if (s.layout == Layout::nhwc) return nhwc::im2col(s, x, nb, col);
  check_index_range(s, nb);
  const int64_t P = s.out_pixels(), total = s.c * nb * P;
  if (total == 0) return;
  im2col_kernel<<<grid_for(total, kBlock), kBlock, 0, stream()>>>(
      x, col, int(total), int(nb * P), int(P), int(s.c), int(s.h), int(s.w), int(s.kh), int(s.kw), int(s.stride_h),
      int(s.stride_w), int(s.pad_h), int(s.pad_w), int(s.ow));
  CUDA_CHECK_LAUNCH();
}

template <class T>
void col2im(const Conv2dShape& s, const T* col, int64_t nb, T* x) {
  if (s.layout == Layout::nhwc) return nhwc::col2im(s, col, nb, x);
  check_index_range(s, nb);
  const int64_t total = nb * s.c * s.h * s.w;
  if (total == 0) return;
  col2im_kernel<<<grid_for(total, kBlock), kBlock, 0, stream()>>>(
      col, x, int(total), int(nb * s.out_pixels()), int(s.out_pixels()), int(s.c), int(s.h), int(s.w), int(s.kh),
      int(s.kw), int(s.stride_h), int(s.stride_w), int(s.pad_h), int(s.pad_w), int(s.oh), int(s.ow));
  CUDA_CHECK_LAUNCH();
}

template <class T>
void conv2d_add_bias(const Conv2dShape& s, const T* bias, T* y) {
  if (s.layout == Layout::nhwc) return nhwc::add_bias(s, bias, y);
  const int64_t P = s.out_pixels(), total = s.n * s.oc * P;
  if (total == 0) return;
  add_bias_kernel<<<grid_for(total, kBlock), kBlock, 0, stream()>>>(bias, y, total, P, s.oc);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void conv2d_bias_grad(const Conv2dShape& s, const T* gy, T* gb) {
  if (s.layout == Layout::nhwc) return nhwc::bias_grad(s, gy, gb);
  if (s.oc == 0) return;
  check_index_range(s, 1);
  conv_kernels::bias_grad<<<unsigned(s.oc), kBlock, 0, stream()>>>(gy, gb, int(s.n), int(s.out_pixels()), int(s.oc));
  CUDA_CHECK_LAUNCH();
}

namespace {

// Below this many output pixels per image a chunk of nb > 1 images runs as ONE GEMM over [OC, nb*P] followed by
// a permute into NCHW: per-image GEMMs with so skinny an n = P leave most of each cuBLAS tile (64 to 256 columns)
// empty, so the batched call loses to the one large GEMM, while the permute of so small an output costs little.
// From this size on, per-image GEMMs write NCHW directly and the permute passes (each a full read and write of the
// output or of its gradient) go away. A starting value; the crossover is for bench_kernels to settle.
constexpr int64_t kBatchedMinPixels = 64;

// Whether a chunk of nb images runs as per-image GEMMs (one strided-batched call) writing NCHW directly.
bool per_image_gemms(const Conv2dShape& s, int64_t nb) { return nb == 1 || s.out_pixels() >= kBatchedMinPixels; }

// A 1x1, stride-1, unpadded convolution (OH = H, OW = W): image img's column block is x_img [C, H*W] itself.
bool x_is_col(const Conv2dShape& s) { return s.pointwise() && s.oh == s.h && s.ow == s.w; }

// For img in [0, batch): C_img [m, n] = op(A) [m, k] x B_img [k, n], row-major (kernels/gemm.h), with one A for
// every image (stride 0), B_img = b + img*stride_b (row stride ldb), C_img = c + img*stride_c (row stride ldc).
// A single image is a plain GEMM.
template <class T>
void gemm_per_image(bool trans_a, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b, int64_t ldb,
                    int64_t stride_b, T* c, int64_t ldc, int64_t stride_c, int64_t batch) {
  if (batch == 1) return gemm<T>(trans_a, false, m, n, k, compute_t<T>(1), a, lda, b, ldb, compute_t<T>(0), c, ldc);
  gemm_strided_batched<T>(trans_a, false, m, n, k, compute_t<T>(1), a, lda, 0, b, ldb, stride_b, compute_t<T>(0), c,
                          ldc, stride_c, batch);
}

// Index mapping of the per-image GEMMs (row-major, element (r, q) of a matrix with row stride ld at base + r*ld + q),
// for a chunk of nb images, P = OH*OW, NP = nb*P, K = C*KH*KW:
//   W     [OC, K]      w[oc*K + k]                       (lda = K, the same for every image)
//   col   [K, NP]      col[k*NP + img*P + p]             image img's block: base col + img*P, ldb = NP, stride P
//   x_img [C, P]       x[img*C*P + c*P + p]  (x_is_col)  base x + img*C*P, ldb = P, stride C*P
//   y_img [OC, P]      y[img*OC*P + oc*P + p]            base y + img*OC*P, ldc = P, stride OC*P
// Forward:       y_img [OC, P] = W [OC, K] x col_img [K, P]
// Backward data: gcol_img [K, P] = W^T [K, OC] x gy_img [OC, P], into col's block (or gx_img when x_is_col)
template <class T>
void forward_impl(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y) {
  const int64_t P = s.out_pixels(), K = s.ckk(), in_img = s.c * s.h * s.w, out_img = s.oc * P;
  const int64_t chunk = conv_chunk_images(s, kChunkElems);
  check_index_range(s, chunk);
  DeviceBuffer<T> col_buf, out_buf;
  for (int64_t n0 = 0; n0 < s.n; n0 += chunk) {
    const int64_t nb = std::min(chunk, s.n - n0), NP = nb * P;
    const T* xc = x + n0 * in_img;
    T* yc = y + n0 * out_img;
    const bool per_image = per_image_gemms(s, nb);
    // B_img: x_img itself, or image img's columns of the im2col buffer.
    const T* col = xc;
    int64_t ldb = P, stride_b = in_img;
    if (!(per_image && x_is_col(s))) {
      col_buf.reset(K * NP);
      im2col(s, xc, nb, col_buf.get());
      col = col_buf.get(), ldb = NP, stride_b = P;
    }
    if (per_image) {
      gemm_per_image<T>(false, s.oc, P, K, w, K, col, ldb, stride_b, yc, P, out_img, nb);
      if (bias) {
        Conv2dShape part = s;
        part.n = nb;
        conv2d_add_bias(part, bias, yc);
      }
    } else {
      out_buf.reset(s.oc * NP);
      gemm<T>(false, false, s.oc, NP, K, compute_t<T>(1), w, K, col, NP, compute_t<T>(0), out_buf.get(),
              NP);  // out [OC, NP]
      permute_out(s, out_buf.get(), nb, bias, yc);
    }
  }
}

template <class T>
void backward_impl(const Conv2dShape& s, const T* x, const T* w, const T* gy, T* gx, T* gw) {
  const int64_t P = s.out_pixels(), K = s.ckk(), in_img = s.c * s.h * s.w, out_img = s.oc * P;
  const int64_t chunk = conv_chunk_images(s, kChunkElems);
  check_index_range(s, chunk);
  // col_buf serves the gW GEMM's im2col and then the data GEMM's output: reuse is safe because everything runs
  // in order on the one stream (the gW GEMM that reads col is queued before the GEMM that overwrites it).
  DeviceBuffer<T> col_buf, gyt_buf;
  conv_kernels::WeightGradSum<T> gw_sum(gw, s.oc * K, chunk < s.n);
  for (int64_t n0 = 0; n0 < s.n; n0 += chunk) {
    const int64_t nb = std::min(chunk, s.n - n0), NP = nb * P;
    const T* xc = x + n0 * in_img;
    const T* gyc = gy + n0 * out_img;
    const bool per_image = per_image_gemms(s, nb);
    // gy' [OC, NP]: gW = gy' x col^T is one GEMM only over this layout; the data GEMM needs it only when it is
    // not per image. For one image gy [OC, P] already is gy'.
    const T* gyt = gyc;
    if (nb > 1 && (gw || !per_image)) {
      gyt_buf.reset(s.oc * NP);
      permute_grad(s, gyc, nb, gyt_buf.get());
      gyt = gyt_buf.get();
    }
    if (gw) {
      const T* col = xc;  // one pointwise image: col is x itself (for nb > 1, im2col transposes x to [C, NP])
      if (!(nb == 1 && x_is_col(s))) {
        col_buf.reset(K * NP);
        im2col(s, xc, nb, col_buf.get());
        col = col_buf.get();
      }
      gw_sum.add(false, true, s.oc, K, NP, gyt, NP, col, NP, n0 == 0, K);
    }
    if (gx) {
      T* gxc = gx + n0 * in_img;
      if (per_image && x_is_col(s)) {
        gemm_per_image<T>(true, K, P, s.oc, w, K, gyc, P, out_img, gxc, P, in_img, nb);  // col2im is the identity
      } else {
        col_buf.reset(K * NP);
        if (per_image)
          gemm_per_image<T>(true, K, P, s.oc, w, K, gyc, P, out_img, col_buf.get(), NP, P, nb);
        else
          gemm<T>(true, false, K, NP, s.oc, compute_t<T>(1), w, K, gyt, NP, compute_t<T>(0), col_buf.get(), NP);
        col2im(s, col_buf.get(), nb, gxc);
      }
    }
  }
  if (gw) gw_sum.finish();
}

}  // namespace

template <class T>
void conv2d_forward(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y) {
  if (s.layout == Layout::nhwc) return nhwc::conv2d_forward(s, x, w, bias, y);
  if (s.n == 0) return;
  conv_kernels::with_live_taps(s, w, [&](const Conv2dShape& sc, const T* wc) { forward_impl(sc, x, wc, bias, y); });
}

template <class T>
void conv2d_backward(const Conv2dShape& s, const T* x, const T* w, const T* gy, T* gx, T* gw, T* gb) {
  if (s.layout == Layout::nhwc) return nhwc::conv2d_backward(s, x, w, gy, gx, gw, gb);
  if (gb) conv2d_bias_grad(s, gy, gb);
  if (!gx && !gw) return;
  if (s.n == 0) {
    if (gw) memset_zero(gw, sizeof(T) * s.oc * s.ckk());
    return;
  }
  // The weight is read for gx only, so a caller wanting gW alone may pass none (as in the NHWC backward).
  conv_kernels::with_live_taps_backward(s, w, gw, gx != nullptr, [&](const Conv2dShape& sc, const T* wc, T* gwc) {
    backward_impl(sc, x, wc, gy, gx, gwc);
  });
}

KERNELS_CONV_INSTANTIATIONS

}  // namespace kernels::cuda
