// Convolution on the CPU: im2col over a chunk of images (OpenMP over channel x image planes), one OpenBLAS
// GEMM per chunk, and a permute that adds the bias. See kernels/conv.h for the algorithm. Channels-last (NHWC)
// shapes go to kernels/cpu/conv_nhwc.cpp from each entry point below; the live-tap crop, the fully connected
// case and the bf16 widening are shared by both layouts.
#include "kernels/conv.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "kernels/cpu/compute_buffer.h"
#include "kernels/cpu/conv_nhwc.h"
#include "kernels/gemm.h"

namespace kernels::cpu {
namespace {

constexpr int64_t kChunkElems = kCpuConvChunkElems;  // kernels/conv.h
// Below this many elements of work a parallel region costs more than it saves.
constexpr int64_t kParallelMin = int64_t(1) << 15;

// Per-thread scratch that only grows: a training step would otherwise page-fault a fresh col buffer for
// every convolution. Slot 0 holds col, slot 1 the GEMM output / permuted gradient.
template <class T>
T* scratch(int slot, int64_t n) {
  struct Buf {
    std::unique_ptr<T[]> p;
    int64_t cap = 0;
  };
  thread_local Buf bufs[2];
  Buf& b = bufs[slot];
  if (b.cap < n) {
    b.p.reset();
    b.p.reset(new T[n]);
    b.cap = n;
  }
  return b.p.get();
}

// Output positions o in [lo, hi) whose input index o*stride - pad + k lies inside [0, in).
inline void valid_range(int64_t k, int64_t pad, int64_t stride, int64_t in, int64_t out, int64_t& lo, int64_t& hi) {
  int64_t first = pad - k;  // need o*stride >= pad - k
  lo = first <= 0 ? 0 : (first + stride - 1) / stride;
  int64_t last = in - 1 + pad - k;  // need o*stride <= in - 1 + pad - k
  hi = last < 0 ? 0 : std::min(out, last / stride + 1);
  lo = std::min(lo, hi);
}

// out [OC, nb*P] -> y [nb, OC, P], adding bias[oc] when given.
template <class T>
void permute_out(const Conv2dShape& s, const T* out, int64_t nb, const T* bias, T* y) {
  const int64_t P = s.out_pixels(), NP = nb * P;
#pragma omp parallel for collapse(2) schedule(static) if (nb * s.oc * P > kParallelMin)
  for (int64_t img = 0; img < nb; ++img)
    for (int64_t oc = 0; oc < s.oc; ++oc) {
      const T* src = out + oc * NP + img * P;
      T* dst = y + (img * s.oc + oc) * P;
      const T b = bias ? bias[oc] : T(0);
      for (int64_t p = 0; p < P; ++p) dst[p] = src[p] + b;
    }
}

// gy [nb, OC, P] -> gy' [OC, nb*P]
template <class T>
void permute_grad(const Conv2dShape& s, const T* gy, int64_t nb, T* gyt) {
  const int64_t P = s.out_pixels(), NP = nb * P;
#pragma omp parallel for collapse(2) schedule(static) if (nb * s.oc * P > kParallelMin)
  for (int64_t oc = 0; oc < s.oc; ++oc)
    for (int64_t img = 0; img < nb; ++img)
      std::memcpy(gyt + oc * NP + img * P, gy + (img * s.oc + oc) * P, P * sizeof(T));
}

// For every kernel row i, the output rows [oh_lo, oh_hi) that read inside the image; for every kernel column j,
// the output columns [ow_lo, ow_hi). Computed once per call, so the inner loops have no divisions or branches.
struct TapRanges {
  std::vector<int64_t> oh_lo, oh_hi, ow_lo, ow_hi;
  explicit TapRanges(const Conv2dShape& s) : oh_lo(s.kh), oh_hi(s.kh), ow_lo(s.kw), ow_hi(s.kw) {
    for (int64_t i = 0; i < s.kh; ++i) valid_range(i, s.pad_h, s.stride_h, s.h, s.oh, oh_lo[i], oh_hi[i]);
    for (int64_t j = 0; j < s.kw; ++j) valid_range(j, s.pad_w, s.stride_w, s.w, s.ow, ow_lo[j], ow_hi[j]);
  }
};

// Small maps (rows of a few pixels, as in ResNet's later stages at 28x28) spend their time in the per-row loop
// bookkeeping of im2col/col2im rather than in moving data. There, one table per kernel tap lists, for every output
// pixel, the input pixel it reads inside its plane, or kPad (a zero slot just past the plane) for padding. The
// plane is staged in a small stack buffer with that slot, so the copy is a branch-free gather over all P pixels.
constexpr int64_t kTableMaxPlane = 4096;  // input planes up to 64x64 (the stack buffer holds plane + 1)
constexpr int64_t kTableMaxOw = 16;       // wider output rows copy well row by row

bool use_tables(const Conv2dShape& s) { return s.ow < kTableMaxOw && s.h * s.w <= kTableMaxPlane; }

// [KH*KW][P]: the offset in the plane read by tap (i, j) at output pixel p, or H*W for padding.
std::vector<int32_t> tap_table(const Conv2dShape& s) {
  const int64_t P = s.out_pixels(), HW = s.h * s.w;
  std::vector<int32_t> idx(s.kh * s.kw * P);
  for (int64_t i = 0; i < s.kh; ++i)
    for (int64_t j = 0; j < s.kw; ++j)
      for (int64_t oh = 0; oh < s.oh; ++oh)
        for (int64_t ow = 0; ow < s.ow; ++ow) {
          const int64_t ih = oh * s.stride_h - s.pad_h + i, iw = ow * s.stride_w - s.pad_w + j;
          const bool in = ih >= 0 && ih < s.h && iw >= 0 && iw < s.w;
          idx[((i * s.kw + j) * s.oh + oh) * s.ow + ow] = int32_t(in ? ih * s.w + iw : HW);
        }
  return idx;
}

// kP > 0: the output plane has exactly kP pixels, known at compile time, so the per-tap loop unrolls (the 4x4,
// 2x2 and 1x1 maps of ResNet at 28x28 copy 16, 4 or 1 values per tap); kP == 0 reads P at run time.
template <int kP, class T>
void im2col_tables_p(const Conv2dShape& s, const T* x, int64_t nb, T* col) {
  const int64_t P = kP > 0 ? kP : s.out_pixels(), NP = nb * P, HW = s.h * s.w, KK = s.kh * s.kw;
  const std::vector<int32_t> table = tap_table(s);
  const int32_t* idx = table.data();
#pragma omp parallel for collapse(2) schedule(static) if (s.ckk() * NP > kParallelMin)
  for (int64_t c = 0; c < s.c; ++c)
    for (int64_t img = 0; img < nb; ++img) {
      T plane[kTableMaxPlane + 1];
      const T* xp = x + (img * s.c + c) * HW;
      for (int64_t q = 0; q < HW; ++q) plane[q] = xp[q];  // a few values: a call to memcpy costs more
      plane[HW] = to_storage<T>(0);
      T* dst = col + c * KK * NP + img * P;
      for (int64_t t = 0; t < KK; ++t, dst += NP) {
        const int32_t* it = idx + t * P;
        for (int64_t p = 0; p < P; ++p) dst[p] = plane[it[p]];
      }
    }
}

template <class T>
void im2col_tables(const Conv2dShape& s, const T* x, int64_t nb, T* col) {
  switch (s.out_pixels()) {
    case 1:
      return im2col_tables_p<1>(s, x, nb, col);
    case 4:
      return im2col_tables_p<4>(s, x, nb, col);
    case 16:
      return im2col_tables_p<16>(s, x, nb, col);
    default:
      return im2col_tables_p<0>(s, x, nb, col);
  }
}

template <class T>
void col2im_tables(const Conv2dShape& s, const T* col, int64_t nb, T* x) {
  const int64_t P = s.out_pixels(), NP = nb * P, HW = s.h * s.w, KK = s.kh * s.kw;
  // Gather rather than scatter: for every input pixel q, the offsets in col (tap t, output pixel p: t*NP + p)
  // of the entries that read it, in tap order (the order the row-wise col2im adds them in). Each pixel is then
  // one register sum, with no read-modify-write chains through memory; padding is never visited. Pixels are
  // visited grouped by how many entries they sum (interior ones all KK, border ones fewer), so the inner loop's
  // trip count only changes between groups and its exit branch predicts well.
  const std::vector<int32_t> table = tap_table(s);
  std::vector<std::vector<int64_t>> lists(HW);
  for (int64_t t = 0; t < KK; ++t)
    for (int64_t p = 0; p < P; ++p)
      if (table[t * P + p] != HW) lists[table[t * P + p]].push_back(t * NP + p);
  std::vector<int32_t> order(HW);
  for (int64_t q = 0; q < HW; ++q) order[q] = int32_t(q);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return lists[a].size() < lists[b].size(); });
  struct Group {
    int64_t count, begin, end;  // pixels order[begin, end) each sum `count` entries
  };
  std::vector<Group> groups;
  std::vector<int64_t> offs;
  for (int64_t r = 0; r < HW; ++r) {
    const std::vector<int64_t>& l = lists[order[r]];
    if (groups.empty() || groups.back().count != int64_t(l.size())) groups.push_back({int64_t(l.size()), r, r});
    groups.back().end = r + 1;
    offs.insert(offs.end(), l.begin(), l.end());
  }
  const int32_t* ord = order.data();
  const Group* gs = groups.data();
  const int64_t ng = int64_t(groups.size());
  // Channel outer, images inner: each thread walks its KK rows of col front to back.
#pragma omp parallel for collapse(2) schedule(static) if (s.ckk() * NP > kParallelMin)
  for (int64_t c = 0; c < s.c; ++c)
    for (int64_t img = 0; img < nb; ++img) {
      const T* src = col + c * KK * NP + img * P;
      T* xp = x + (img * s.c + c) * HW;
      const int64_t* o = offs.data();
      for (int64_t g = 0; g < ng; ++g) {
        const int64_t n = gs[g].count;
        for (int64_t r = gs[g].begin; r < gs[g].end; ++r, o += n) {
          compute_t<T> acc = 0;
          for (int64_t k = 0; k < n; ++k) acc += to_compute(src[o[k]]);
          xp[ord[r]] = to_storage<T>(acc);
        }
      }
    }
}

}  // namespace

template <class T>
void im2col(const Conv2dShape& s, const T* x, int64_t nb, T* col) {
  if (s.layout == Layout::nhwc) return nhwc::im2col(s, x, nb, col);
  if (use_tables(s)) return im2col_tables(s, x, nb, col);
  const int64_t P = s.out_pixels(), NP = nb * P, HW = s.h * s.w, OW = s.ow;
  const int64_t sh = s.stride_h, sw = s.stride_w;
  const TapRanges r(s);
  const T zero = to_storage<T>(0);
#pragma omp parallel for collapse(2) schedule(static) if (s.ckk() * NP > kParallelMin)
  for (int64_t c = 0; c < s.c; ++c)
    for (int64_t img = 0; img < nb; ++img) {
      const T* xp = x + (img * s.c + c) * HW;
      for (int64_t i = 0; i < s.kh; ++i) {
        const int64_t oh_lo = r.oh_lo[i], oh_hi = r.oh_hi[i];
        for (int64_t j = 0; j < s.kw; ++j) {
          T* dst = col + ((c * s.kh + i) * s.kw + j) * NP + img * P;
          const int64_t lo = r.ow_lo[j], hi = r.ow_hi[j];
          std::fill(dst, dst + oh_lo * OW, zero);  // output rows above the image
          for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
            T* d = dst + oh * OW;
            const T* src = xp + (oh * sh - s.pad_h + i) * s.w;  // input row; column of ow is ow*sw - pw + j
            for (int64_t ow = 0; ow < lo; ++ow) d[ow] = zero;
            if (sw == 1) {
              const int64_t off = j - s.pad_w;  // ow + off is inside the row for ow in [lo, hi)
              for (int64_t ow = lo; ow < hi; ++ow) d[ow] = src[ow + off];
            } else {
              for (int64_t ow = lo; ow < hi; ++ow) d[ow] = src[ow * sw - s.pad_w + j];
            }
            for (int64_t ow = hi; ow < OW; ++ow) d[ow] = zero;
          }
          std::fill(dst + oh_hi * OW, dst + P, zero);  // output rows below the image
        }
      }
    }
}

template <class T>
void col2im(const Conv2dShape& s, const T* col, int64_t nb, T* x) {
  if (s.layout == Layout::nhwc) return nhwc::col2im(s, col, nb, x);
  if (use_tables(s)) return col2im_tables(s, col, nb, x);
  const int64_t P = s.out_pixels(), NP = nb * P, HW = s.h * s.w, OW = s.ow;
  const int64_t sh = s.stride_h, sw = s.stride_w;
  const TapRanges r(s);
  // Each (image, channel) plane of x only receives from its own rows of col: planes are independent.
#pragma omp parallel for collapse(2) schedule(static) if (s.ckk() * NP > kParallelMin)
  for (int64_t img = 0; img < nb; ++img)
    for (int64_t c = 0; c < s.c; ++c) {
      ComputeBuffer<T> acc(x + (img * s.c + c) * HW, HW);
      acc.zero();
      compute_t<T>* xp = acc.data();
      for (int64_t i = 0; i < s.kh; ++i)
        for (int64_t j = 0; j < s.kw; ++j) {
          const T* src = col + ((c * s.kh + i) * s.kw + j) * NP + img * P;
          const int64_t lo = r.ow_lo[j], hi = r.ow_hi[j];
          for (int64_t oh = r.oh_lo[i]; oh < r.oh_hi[i]; ++oh) {
            const T* sp = src + oh * OW;
            compute_t<T>* d = xp + (oh * sh - s.pad_h + i) * s.w;
            if (sw == 1) {
              const int64_t off = j - s.pad_w;
              for (int64_t ow = lo; ow < hi; ++ow) d[ow + off] += to_compute(sp[ow]);
            } else {
              for (int64_t ow = lo; ow < hi; ++ow) d[ow * sw - s.pad_w + j] += to_compute(sp[ow]);
            }
          }
        }
      acc.store();
    }
}

template <class T>
void conv2d_add_bias(const Conv2dShape& s, const T* bias, T* y) {
  if (s.layout == Layout::nhwc) return nhwc::add_bias(s, bias, y);
  const int64_t P = s.out_pixels();
#pragma omp parallel for collapse(2) schedule(static) if (s.n * s.oc * P > kParallelMin)
  for (int64_t img = 0; img < s.n; ++img)
    for (int64_t oc = 0; oc < s.oc; ++oc) {
      T* dst = y + (img * s.oc + oc) * P;
      const compute_t<T> b = to_compute(bias[oc]);
      for (int64_t p = 0; p < P; ++p) dst[p] = to_storage<T>(to_compute(dst[p]) + b);
    }
}

template <class T>
void conv2d_bias_grad(const Conv2dShape& s, const T* gy, T* gb) {
  if (s.layout == Layout::nhwc) return nhwc::bias_grad(s, gy, gb);
  const int64_t P = s.out_pixels();
#pragma omp parallel for schedule(static) if (s.n * s.oc * P > kParallelMin)
  for (int64_t oc = 0; oc < s.oc; ++oc) {
    double acc = 0;  // float gradients summed over a whole batch lose digits in float
    for (int64_t img = 0; img < s.n; ++img) {
      const T* src = gy + (img * s.oc + oc) * P;
      compute_t<T> part = 0;
      for (int64_t p = 0; p < P; ++p) part += to_compute(src[p]);
      acc += part;
    }
    gb[oc] = convert_value<T>(acc);
  }
}

namespace {

// w [OC, C, KH, KW] -> the live taps only, [OC, C, i1 - i0, j1 - j0].
template <class T>
void crop_weight(const Conv2dShape& s, const LiveTaps& t, const T* w, T* wc) {
  if (s.layout == Layout::nhwc) return nhwc::crop_weight(s, t, w, wc);
  const int64_t kh = t.i1 - t.i0, kw = t.j1 - t.j0;
  // A 3x3 weight of 512x512 channels cropped to its centre is 9 MB read per call: worth both threads.
#pragma omp parallel for schedule(static) if (s.oc * s.ckk() > kParallelMin)
  for (int64_t oc = 0; oc < s.oc * s.c; ++oc)
    for (int64_t a = 0; a < kh; ++a)
      for (int64_t b = 0; b < kw; ++b) wc[(oc * kh + a) * kw + b] = w[(oc * s.kh + a + t.i0) * s.kw + b + t.j0];
}

// The reverse for the weight gradient: dead taps get 0.
template <class T>
void uncrop_weight_grad(const Conv2dShape& s, const LiveTaps& t, const T* gwc, T* gw) {
  if (s.layout == Layout::nhwc) return nhwc::uncrop_weight_grad(s, t, gwc, gw);
  const int64_t kh = t.i1 - t.i0, kw = t.j1 - t.j0, KK = s.kh * s.kw;
#pragma omp parallel for schedule(static) if (s.oc * s.ckk() > kParallelMin)
  for (int64_t oc = 0; oc < s.oc * s.c; ++oc) {
    T* g = gw + oc * KK;
    std::fill(g, g + KK, T(0));
    for (int64_t a = 0; a < kh; ++a)
      for (int64_t b = 0; b < kw; ++b) g[(a + t.i0) * s.kw + b + t.j0] = gwc[(oc * kh + a) * kw + b];
  }
}

// One output pixel that reads the whole unpadded input (a 1x1 map after a cropped 3x3, or a kernel as large as
// its input): im2col of an image is the image itself, so the batch [N, C*H*W] is col^T and the convolution is a
// fully connected layer, y [N, OC] = x W^T, with no im2col, permute or col2im. The same in NHWC: an image's
// [H, W, C] is then ordered as the weight's [KH, KW, C], and y [N, 1, 1, OC] is [N, OC] in either layout.
inline bool linear_like(const Conv2dShape& s) {
  return s.oh == 1 && s.ow == 1 && s.kh == s.h && s.kw == s.w && s.pad_h == 0 && s.pad_w == 0;
}

template <class T>
void forward_linear(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y) {
  const int64_t K = s.ckk();
  gemm<T>(false, true, s.n, s.oc, K, T(1), x, K, w, K, T(0), y, s.oc);
  if (bias) conv2d_add_bias(s, bias, y);
}

template <class T>
void backward_linear(const Conv2dShape& s, const T* x, const T* w, const T* gy, T* gx, T* gw) {
  const int64_t K = s.ckk();
  if (gw) gemm<T>(true, false, s.oc, K, s.n, T(1), gy, s.oc, x, K, T(0), gw, K);   // gW [OC, K] = gy^T x
  if (gx) gemm<T>(false, false, s.n, K, s.oc, T(1), gy, s.oc, w, K, T(0), gx, K);  // gx [N, K] = gy W
}

// Tiny maps (ResNet's 2x2 at 28 px input): when every output pixel's window, padding removed, covers about the
// whole input plane, the convolution is a dense matrix: y [N, OC*P] = x [N, C*H*W] Wd^T, with
// Wd[(oc, p), (c, q)] = w[oc, c, tap] for the tap that takes input pixel q to output pixel p (0 where none does).
// Its FLOPs are those of the live taps only (a 3x3, pad-1 kernel on a 2x2 map reads padding with 5 of its 9
// taps, which im2col + GEMM would multiply), and x, y and gx are used in NCHW as they are: no im2col, permute or
// col2im. Backward: gx = gy Wd; gWd = gy^T x, folded back onto the taps.
struct DenseMap {
  std::vector<int32_t> tap;  // [P][H*W]: the tap that takes input pixel q to output pixel p, -1 if none
  int64_t pairs = 0;         // (p, q) pairs joined by a tap
};

DenseMap dense_map(const Conv2dShape& s) {
  const int64_t HW = s.h * s.w;
  DenseMap d;
  d.tap.assign(s.out_pixels() * HW, -1);
  for (int64_t oh = 0; oh < s.oh; ++oh)
    for (int64_t ow = 0; ow < s.ow; ++ow)
      for (int64_t i = 0; i < s.kh; ++i)
        for (int64_t j = 0; j < s.kw; ++j) {
          const int64_t ih = oh * s.stride_h - s.pad_h + i, iw = ow * s.stride_w - s.pad_w + j;
          if (ih < 0 || ih >= s.h || iw < 0 || iw >= s.w) continue;
          d.tap[(oh * s.ow + ow) * HW + ih * s.w + iw] = int32_t(i * s.kw + j);
          ++d.pairs;
        }
  return d;
}

// The dense matrix costs P*H*W multiply-adds per (oc, c) pair against KH*KW*P for im2col + GEMM: used only when
// every entry is a live tap (each output reads its whole input plane, so it multiplies no padding), and only
// when the matrix is no larger than the column buffer im2col would fill (at small batches building it would cost
// more than the GEMM saves; and models/memory.h sizes the CPU scratch from the im2col buffers).
bool use_dense(const Conv2dShape& s) {
  if (s.layout != Layout::nchw) return false;  // the dense matrix's columns are NCHW's (c, q)
  const int64_t P = s.out_pixels(), HW = s.h * s.w;
  if (P * HW > 64 || s.oc * P * s.c * HW > s.ckk() * P * conv_chunk_images(s, kChunkElems)) return false;
  return dense_map(s).pairs == P * HW;
}

// kHW > 0: input planes of exactly kHW pixels (the 2x2 maps: 4), so the per-channel loop unrolls.
template <int kHW, class T>
void dense_weight_hw(const Conv2dShape& s, const DenseMap& d, const T* w, T* wd) {
  const int64_t P = s.out_pixels(), HW = kHW > 0 ? kHW : s.h * s.w, KK = s.kh * s.kw, CHW = s.c * HW;
#pragma omp parallel for collapse(2) schedule(static) if (s.oc * P * CHW > kParallelMin)
  for (int64_t oc = 0; oc < s.oc; ++oc)
    for (int64_t p = 0; p < P; ++p) {
      const int32_t* tp = d.tap.data() + p * HW;
      const T* wo = w + oc * s.c * KK;
      T* row = wd + (oc * P + p) * CHW;
      for (int64_t c = 0; c < s.c; ++c)
        for (int64_t q = 0; q < HW; ++q) row[c * HW + q] = wo[c * KK + tp[q]];
    }
}

template <class T>
void dense_weight(const Conv2dShape& s, const DenseMap& d, const T* w, T* wd) {
  if (s.h * s.w == 4) return dense_weight_hw<4>(s, d, w, wd);
  dense_weight_hw<0>(s, d, w, wd);
}

template <class T>
void forward_dense(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y) {
  const int64_t OP = s.oc * s.out_pixels(), CHW = s.c * s.h * s.w;
  const DenseMap d = dense_map(s);
  T* wd = scratch<T>(0, OP * CHW);
  dense_weight(s, d, w, wd);
  gemm<T>(false, true, s.n, OP, CHW, T(1), x, CHW, wd, CHW, T(0), y, OP);
  if (bias) conv2d_add_bias(s, bias, y);
}

template <class T>
void backward_dense(const Conv2dShape& s, const T* x, const T* w, const T* gy, T* gx, T* gw) {
  const int64_t P = s.out_pixels(), OP = s.oc * P, HW = s.h * s.w, CHW = s.c * HW, KK = s.kh * s.kw;
  const DenseMap d = dense_map(s);
  if (gx) {
    T* wd = scratch<T>(0, OP * CHW);
    dense_weight(s, d, w, wd);
    gemm<T>(false, false, s.n, CHW, OP, T(1), gy, OP, wd, CHW, T(0), gx, CHW);
  }
  if (!gw) return;
  T* gwd = scratch<T>(0, OP * CHW);  // the dense weight is no longer needed
  gemm<T>(true, false, OP, CHW, s.n, T(1), gy, OP, x, CHW, T(0), gwd, CHW);
#pragma omp parallel for collapse(2) schedule(static) if (s.oc * s.ckk() > kParallelMin)
  for (int64_t oc = 0; oc < s.oc; ++oc)
    for (int64_t c = 0; c < s.c; ++c) {
      T* g = gw + (oc * s.c + c) * KK;
      for (int64_t t = 0; t < KK; ++t) g[t] = T(0);
      for (int64_t p = 0; p < P; ++p) {
        const T* src = gwd + (oc * P + p) * CHW + c * HW;
        const int32_t* tp = d.tap.data() + p * HW;
        for (int64_t q = 0; q < HW; ++q) g[tp[q]] += src[q];
      }
    }
}

template <class T>
void forward_impl(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y) {
  if (linear_like(s)) return forward_linear(s, x, w, bias, y);
  if (s.layout == Layout::nhwc) return nhwc::forward(s, x, w, bias, y);
  if (use_dense(s)) return forward_dense(s, x, w, bias, y);
  const int64_t P = s.out_pixels(), K = s.ckk(), in_img = s.c * s.h * s.w, out_img = s.oc * P;
  const int64_t chunk = conv_chunk_images(s, kChunkElems);
  for (int64_t n0 = 0; n0 < s.n; n0 += chunk) {
    const int64_t nb = std::min(chunk, s.n - n0), NP = nb * P;
    const T* xc = x + n0 * in_img;
    T* yc = y + n0 * out_img;
    const T* col = xc;  // a pointwise convolution of one image needs no im2col
    if (!(s.pointwise() && nb == 1)) {
      T* buf = scratch<T>(0, K * NP);
      im2col(s, xc, nb, buf);
      col = buf;
    }
    if (nb == 1) {
      // [OC, P] is already the NCHW layout of one image.
      gemm<T>(false, false, s.oc, P, K, T(1), w, K, col, P, T(0), yc, P);
      if (bias) {
        Conv2dShape one = s;
        one.n = 1;
        conv2d_add_bias(one, bias, yc);
      }
    } else {
      T* out = scratch<T>(1, s.oc * NP);
      gemm<T>(false, false, s.oc, NP, K, T(1), w, K, col, NP, T(0), out, NP);
      permute_out(s, out, nb, bias, yc);
    }
  }
}

template <class T>
void backward_impl(const Conv2dShape& s, const T* x, const T* w, const T* gy, T* gx, T* gw) {
  if (linear_like(s)) return backward_linear(s, x, w, gy, gx, gw);
  if (s.layout == Layout::nhwc) return nhwc::backward(s, x, w, gy, gx, gw);
  if (use_dense(s)) return backward_dense(s, x, w, gy, gx, gw);
  const int64_t P = s.out_pixels(), K = s.ckk(), in_img = s.c * s.h * s.w, out_img = s.oc * P;
  const int64_t chunk = conv_chunk_images(s, kChunkElems);
  for (int64_t n0 = 0; n0 < s.n; n0 += chunk) {
    const int64_t nb = std::min(chunk, s.n - n0), NP = nb * P;
    const T* xc = x + n0 * in_img;
    const T* gyc = gy + n0 * out_img;
    const T* gyt = gyc;  // one image: gy [OC, P] already is gy'
    if (nb > 1) {
      T* buf = scratch<T>(1, s.oc * NP);
      permute_grad(s, gyc, nb, buf);
      gyt = buf;
    }
    const bool direct = s.pointwise() && nb == 1;  // col is x itself, col2im is the identity
    if (gw) {
      const T* col = xc;
      if (!direct) {
        T* buf = scratch<T>(0, K * NP);
        im2col(s, xc, nb, buf);
        col = buf;
      }
      gemm<T>(false, true, s.oc, K, NP, T(1), gyt, NP, col, NP, n0 == 0 ? T(0) : T(1), gw, K);
    }
    if (gx) {
      T* gxc = gx + n0 * in_img;
      if (direct) {
        gemm<T>(true, false, K, NP, s.oc, T(1), w, K, gyt, NP, T(0), gxc, NP);
      } else {
        T* gcol = scratch<T>(0, K * NP);  // col is no longer needed once gW has been accumulated
        gemm<T>(true, false, K, NP, s.oc, T(1), w, K, gyt, NP, T(0), gcol, NP);
        col2im(s, gcol, nb, gxc);
      }
    }
  }
}

}  // namespace

template <class T>
void conv2d_forward(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y) {
  const LiveTaps t = live_taps(s);
  if (!t.crops(s)) return forward_impl(s, x, w, bias, y);
  const Conv2dShape sc = cropped(s, t);
  std::vector<T> wc(sc.oc * sc.ckk());
  crop_weight(s, t, w, wc.data());
  forward_impl(sc, x, wc.data(), bias, y);
}

template <class T>
void conv2d_backward(const Conv2dShape& s, const T* x, const T* w, const T* gy, T* gx, T* gw, T* gb) {
  if (gb) conv2d_bias_grad(s, gy, gb);
  if (!gx && !gw) return;
  if (s.n == 0) {
    if (gw) std::fill(gw, gw + s.oc * s.ckk(), T(0));
    return;
  }
  const LiveTaps t = live_taps(s);
  if (!t.crops(s)) return backward_impl(s, x, w, gy, gx, gw);
  const Conv2dShape sc = cropped(s, t);
  // The weight is read for gx only (the bf16 version passes none without gx).
  std::vector<T> wc(gx ? sc.oc * sc.ckk() : 0), gwc(gw ? sc.oc * sc.ckk() : 0);
  if (gx) crop_weight(s, t, w, wc.data());
  backward_impl(sc, x, gx ? wc.data() : nullptr, gy, gx, gw ? gwc.data() : nullptr);
  if (gw) uncrop_weight_grad(s, t, gwc.data(), gw);
}

// bf16, the reference for mixed precision, as PyTorch defines a bf16 convolution: the bf16 operands widened to
// float (exactly), the float convolution above (products exact, sums in float), each result rounded to bf16 once.
template <>
void conv2d_forward<bf16>(const Conv2dShape& s, const bf16* x, const bf16* w, const bf16* bias, bf16* y) {
  const Widened xf(x, s.n * s.c * s.h * s.w), wf(w, s.oc * s.ckk()), bf(bias, s.oc);
  ComputeBuffer<bf16> yf(y, s.n * s.oc * s.out_pixels());
  conv2d_forward<float>(s, xf.data(), wf.data(), bf.data(), yf.data());
  yf.store();
}

template <>
void conv2d_backward<bf16>(const Conv2dShape& s, const bf16* x, const bf16* w, const bf16* gy, bf16* gx, bf16* gw,
                           bf16* gb) {
  const int64_t nx = s.n * s.c * s.h * s.w, nw = s.oc * s.ckk(), ny = s.n * s.oc * s.out_pixels();
  // x always (the float path offsets it per chunk); w only for gx, the one use the float path has for it.
  const Widened xf(x, nx), wf(gx ? w : nullptr, nw), gyf(gy, ny);
  ComputeBuffer<bf16> gxf(gx, nx), gwf(gw, nw), gbf(gb, s.oc);
  conv2d_backward<float>(s, xf.data(), wf.data(), gyf.data(), gxf.data(), gwf.data(), gbf.data());
  gxf.store(), gwf.store(), gbf.store();
}

// The shared list keeps the CPU and CUDA twins' sets equal; bf16 is specialised above, so its entry only restates
// it (clang says so).
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Winstantiation-after-specialization"
#endif
KERNELS_CONV_INSTANTIATIONS
#if defined(__clang__)
#pragma clang diagnostic pop
#endif

}  // namespace kernels::cpu
