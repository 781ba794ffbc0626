// Channels-last (NHWC) convolution on the CPU (see kernels/conv.h): the rows of every GEMM are output pixels and
// a pixel's channels are contiguous, so im2col copies runs of C (or KW*C) values, the forward GEMM writes y in
// place, and nothing is permuted. A pointwise convolution is one GEMM over the whole batch with no scratch.
#include "kernels/cpu/conv_nhwc.h"

#include <algorithm>
#include <memory>

#include "kernels/cpu/compute_buffer.h"
#include "kernels/gemm.h"

namespace kernels::cpu::nhwc {
namespace {

constexpr int64_t kParallelMin = int64_t(1) << 15;  // as kernels/cpu/conv.cpp

// Per-thread column buffer that only grows (as kernels/cpu/conv.cpp's, which NHWC does not share).
template <class T>
T* scratch(int64_t n) {
  struct Buf {
    std::unique_ptr<T[]> p;
    int64_t cap = 0;
  };
  thread_local Buf b;
  if (b.cap < n) {
    b.p.reset();
    b.p.reset(new T[n]);
    b.cap = n;
  }
  return b.p.get();
}

}  // namespace

template <class T>
void im2col(const Conv2dShape& s, const T* x, int64_t nb, T* col) {
  const int64_t C = s.c, KWC = s.kw * C, K = s.kh * KWC, OH = s.oh, OW = s.ow, H = s.h, W = s.w;
  const T zero = to_storage<T>(0);
#pragma omp parallel for collapse(2) schedule(static) if (nb * OH * OW * K > kParallelMin)
  for (int64_t img = 0; img < nb; ++img)
    for (int64_t oh = 0; oh < OH; ++oh) {
      const T* xi = x + img * H * W * C;
      T* row = col + (img * OH + oh) * OW * K;
      for (int64_t ow = 0; ow < OW; ++ow) {
        T* d = row + ow * K;
        const int64_t iw0 = ow * s.stride_w - s.pad_w;
        // Kernel columns [jlo, jhi) read inside the input row: one contiguous run of (jhi - jlo) * C values.
        const int64_t jlo = std::max<int64_t>(0, -iw0), jhi = std::min<int64_t>(s.kw, W - iw0);
        for (int64_t i = 0; i < s.kh; ++i, d += KWC) {
          const int64_t ih = oh * s.stride_h - s.pad_h + i;
          if (ih < 0 || ih >= H || jhi <= jlo) {
            std::fill(d, d + KWC, zero);
            continue;
          }
          std::fill(d, d + jlo * C, zero);
          std::copy_n(xi + (ih * W + iw0 + jlo) * C, (jhi - jlo) * C, d + jlo * C);
          std::fill(d + jhi * C, d + KWC, zero);
        }
      }
    }
}

template <class T>
void col2im(const Conv2dShape& s, const T* col, int64_t nb, T* x) {
  const int64_t C = s.c, K = s.kh * s.kw * C, OH = s.oh, OW = s.ow, H = s.h, W = s.w;
  const int64_t sh = s.stride_h, sw = s.stride_w;
  // Each input row of an image gathers, pixel by pixel, the column entries that read it, in tap order; sums in
  // compute_t<T>, rounded once (ComputeBuffer). Rows are independent: no atomics, deterministic.
#pragma omp parallel for collapse(2) schedule(static) if (nb * OH * OW * K > kParallelMin)
  for (int64_t img = 0; img < nb; ++img)
    for (int64_t ih = 0; ih < H; ++ih) {
      ComputeBuffer<T> acc(x + (img * H + ih) * W * C, W * C);
      acc.zero();
      compute_t<T>* a = acc.data();
      for (int64_t iw = 0; iw < W; ++iw, a += C) {
        for_each_reading_tap(ih, iw, s.kh, s.kw, sh, sw, s.pad_h, s.pad_w, OH, OW,
                             [&](int64_t i, int64_t j, int64_t oh, int64_t ow) {
                               const T* src = col + ((img * OH + oh) * OW + ow) * K + (i * s.kw + j) * C;
                               for (int64_t c = 0; c < C; ++c) a[c] += to_compute(src[c]);
                             });
      }
      acc.store();
    }
}

template <class T>
void add_bias(const Conv2dShape& s, const T* bias, T* y) {
  const int64_t rows = s.n * s.out_pixels(), OC = s.oc;
#pragma omp parallel for schedule(static) if (rows * OC > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    T* d = y + r * OC;
    for (int64_t oc = 0; oc < OC; ++oc) d[oc] = to_storage<T>(to_compute(d[oc]) + to_compute(bias[oc]));
  }
}

template <class T>
void bias_grad(const Conv2dShape& s, const T* gy, T* gb) {
  // Blocks of 16 channels (a 64-byte line of floats per pixel), each summed as the NCHW version sums a channel:
  // per image in compute_t<T>, over images in double. The order does not depend on the thread count.
  constexpr int64_t kBlock = 16;
  const int64_t P = s.out_pixels(), OC = s.oc, blocks = (OC + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (s.n * P * OC > kParallelMin)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t o0 = blk * kBlock, o1 = std::min(OC, o0 + kBlock);
    double acc[kBlock] = {};
    for (int64_t img = 0; img < s.n; ++img) {
      compute_t<T> part[kBlock] = {};
      for (int64_t p = 0; p < P; ++p) {
        const T* src = gy + (img * P + p) * OC;
        for (int64_t oc = o0; oc < o1; ++oc) part[oc - o0] += to_compute(src[oc]);
      }
      for (int64_t oc = o0; oc < o1; ++oc) acc[oc - o0] += part[oc - o0];
    }
    for (int64_t oc = o0; oc < o1; ++oc) gb[oc] = convert_value<T>(acc[oc - o0]);
  }
}

template <class T>
void crop_weight(const Conv2dShape& s, const LiveTaps& t, const T* w, T* wc) {
  const int64_t kh = t.i1 - t.i0, kw = t.j1 - t.j0, C = s.c;
#pragma omp parallel for schedule(static) if (s.oc * s.ckk() > kParallelMin)
  for (int64_t oc = 0; oc < s.oc; ++oc)
    for (int64_t a = 0; a < kh; ++a)
      std::copy_n(w + ((oc * s.kh + a + t.i0) * s.kw + t.j0) * C, kw * C, wc + (oc * kh + a) * kw * C);
}

template <class T>
void uncrop_weight_grad(const Conv2dShape& s, const LiveTaps& t, const T* gwc, T* gw) {
  const int64_t kh = t.i1 - t.i0, kw = t.j1 - t.j0, C = s.c;
#pragma omp parallel for schedule(static) if (s.oc * s.ckk() > kParallelMin)
  for (int64_t oc = 0; oc < s.oc; ++oc) {
    T* g = gw + oc * s.ckk();
    std::fill(g, g + s.ckk(), to_storage<T>(0));
    for (int64_t a = 0; a < kh; ++a)
      std::copy_n(gwc + (oc * kh + a) * kw * C, kw * C, g + ((a + t.i0) * s.kw + t.j0) * C);
  }
}

template <class T>
void forward(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y) {
  const int64_t P = s.out_pixels(), K = s.ckk(), OC = s.oc, in_img = s.h * s.w * s.c, out_img = P * OC;
  if (s.pointwise()) {
    // y [N*H*W, OC] = x [N*H*W, C] W^T over the whole batch.
    gemm<T>(false, true, s.n * P, OC, K, compute_t<T>(1), x, K, w, K, compute_t<T>(0), y, OC);
  } else {
    const int64_t chunk = conv_chunk_images(s, kCpuConvChunkElems);
    for (int64_t n0 = 0; n0 < s.n; n0 += chunk) {
      const int64_t nb = std::min(chunk, s.n - n0), NP = nb * P;
      T* col = scratch<T>(NP * K);
      im2col(s, x + n0 * in_img, nb, col);
      gemm<T>(false, true, NP, OC, K, compute_t<T>(1), col, K, w, K, compute_t<T>(0), y + n0 * out_img,
              OC);  // y_chunk = col W^T
    }
  }
  if (bias) add_bias(s, bias, y);
}

template <class T>
void backward(const Conv2dShape& s, const T* x, const T* w, const T* gy, T* gx, T* gw) {
  const int64_t P = s.out_pixels(), K = s.ckk(), OC = s.oc, in_img = s.h * s.w * s.c, out_img = P * OC;
  if (s.pointwise()) {
    const int64_t R = s.n * P;
    if (gw) gemm<T>(true, false, OC, K, R, T(1), gy, OC, x, K, T(0), gw, K);   // gW [OC, C] = gy^T x
    if (gx) gemm<T>(false, false, R, K, OC, T(1), gy, OC, w, K, T(0), gx, K);  // gx [R, C] = gy W
    return;
  }
  const int64_t chunk = conv_chunk_images(s, kCpuConvChunkElems);
  for (int64_t n0 = 0; n0 < s.n; n0 += chunk) {
    const int64_t nb = std::min(chunk, s.n - n0), NP = nb * P;
    const T* gyc = gy + n0 * out_img;
    T* buf = scratch<T>(NP * K);
    if (gw) {
      im2col(s, x + n0 * in_img, nb, buf);
      gemm<T>(true, false, OC, K, NP, T(1), gyc, OC, buf, K, n0 == 0 ? T(0) : T(1), gw, K);  // gW += gy^T col
    }
    if (gx) {
      gemm<T>(false, false, NP, K, OC, T(1), gyc, OC, w, K, T(0), buf, K);  // gcol = gy W (col no longer needed)
      col2im(s, buf, nb, gx + n0 * in_img);
    }
  }
}

KERNELS_FOR_EACH_STORAGE(KERNELS_CONV_NHWC_INSTANTIATE)
// bf16 convolutions widen to float first (kernels/cpu/conv.cpp), so the GEMM paths only see compute types.
KERNELS_FOR_EACH_COMPUTE(KERNELS_CONV_NHWC_GEMM_INSTANTIATE)

}  // namespace kernels::cpu::nhwc
