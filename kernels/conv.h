// 2-D convolution (cross-correlation, as PyTorch) by im2col over the batch and GEMMs, in either of two memory
// layouts (Conv2dShape::layout). NCHW, the default and what the engine's tensors use:
//
// CPU, per chunk of nb images (chunks keep the scratch bounded):
//   col [C*KH*KW, nb*OH*OW] = im2col(x)            one pass over the whole chunk, not one GEMM per image
//   out [OC, nb*OH*OW]      = W [OC, C*KH*KW] x col
//   y   [nb, OC, OH, OW]    = permute(out) + bias   (with nb == 1, `out` already is y and the GEMM writes there)
// Backward, per chunk (col is recomputed, never stored between forward and backward):
//   gy'  [OC, nb*OH*OW]  = permute(gy)
//   gW  += gy' x col^T                              (beta = 1 after the first chunk)
//   gcol = W^T x gy';  gx = col2im(gcol)           (col2im overwrites gx; on CUDA each input pixel gathers
//                                                   its contributions, so no atomics)
//   gb   = sum of gy over N, OH, OW
// CUDA does the same for chunks of nb > 1 images with OH*OW < 64 (there one large GEMM beats cuBLAS's skinny
// batched ones and the permutes are cheap). Other chunks run one GEMM per image (one strided-batched call), which
// reads and writes NCHW directly:
//   y_n    [OC, OH*OW] = W x col_n      (col_n: image n's columns of col; x_n itself when pointwise(), no im2col)
//   y     += bias                       (separate pass, only with a bias)
//   gcol_n [K, OH*OW]  = W^T x gy_n;  gx = col2im(gcol)   (pointwise(): gx_n = W^T x gy_n, no col2im)
//   gW    += gy' x col^T                as above: permute(gy) and im2col run only when gW is wanted
//
// NHWC (channels last; x [N, H, W, C], weight [OC, KH, KW, C] as PyTorch's channels_last weight, y and gy
// [N, OH, OW, OC], gx like x, gw like w). A pixel's channels are contiguous, so the rows of the GEMMs are pixels
// and no permute is ever needed; CPU and CUDA run the same scheme:
//   pointwise() (1x1, stride 1, pad 0), the whole batch at once, no scratch:
//     y [N*H*W, OC] = x [N*H*W, C] x W^T;   gx = gy W;   gW = gy^T x           (one GEMM each)
//   otherwise, per chunk of nb images (the same budget as NCHW; a strided 1x1 is this with KH*KW = 1, where
//   im2col is just the gather of the strided pixels):
//     col [nb*OH*OW, KH*KW*C] = im2col(x)   (row: output pixel; column (i*KW + j)*C + c: runs of C, or of
//                                            KW*C where a whole kernel row lies inside the input)
//     y   [nb*OH*OW, OC]      = col x W^T (+ bias per row)   written straight into y
//     gW += gy^T x col;   gcol = gy W;   gx = col2im(gcol)   (col2im gathers per input pixel, no atomics)
//
// Kernel taps that only ever read padding are cropped away first (see LiveTaps), in either layout.
// The CPU and CUDA versions have the same signatures; scratch on CUDA comes from the caching allocator. The CPU
// also runs a 1x1 output that reads the whole unpadded input as a fully connected layer (kernels/cpu/conv.cpp;
// the same GEMM in both layouts, since one image's [C, H, W] and [H, W, C] then match the weight's order), and
// NCHW convolutions on tiny maps as one dense-matrix GEMM.
// The optional cuDNN versions (kernels/cudnn/conv.cpp) exist only when ENGINE_HAVE_CUDNN; for NHWC they describe
// tensors and filter as CUDNN_TENSOR_NHWC.
//
// Why the layout is a field of the shape, not a second set of functions: every entry point (forward, backward,
// the bias helpers, im2col/col2im) keeps one signature for CPU, CUDA and cuDNN, the engine's per-shape engine
// choice and cuDNN's plan cache key on the shape anyway, and a caller that never sets it (all of today's) gets
// NCHW unchanged. The engine's tensors carry no memory format yet, so nothing above the kernels uses NHWC.
#pragma once
#include <algorithm>
#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/host_device.h"
#include "kernels/layout.h"

namespace kernels {

// Conv2dShape::layout (kernels/layout.h) is the memory order of x, y, gy, gx and of the weight:
//  nchw: x [N, C, H, W], w [OC, C, KH, KW], y [N, OC, OH, OW]
//  nhwc: x [N, H, W, C], w [OC, KH, KW, C], y [N, OH, OW, OC] (channels last)

struct Conv2dShape {
  int64_t n = 0, c = 0, h = 0, w = 0;  // input: N, C, H, W (stored in `layout` order)
  int64_t oc = 0, kh = 0, kw = 0;      // weight: OC, C, KH, KW
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
  int64_t oh = 0, ow = 0;  // output: N, OC, OH, OW
  Layout layout = Layout::nchw;

  int64_t ckk() const { return c * kh * kw; }
  int64_t out_pixels() const { return oh * ow; }
  // A 1x1, stride-1, unpadded convolution: im2col of a single image is the image itself.
  bool pointwise() const { return kh == 1 && kw == 1 && stride_h == 1 && stride_w == 1 && pad_h == 0 && pad_w == 0; }
};

// Kernel rows [i0, i1) and columns [j0, j1) span every tap that reads inside the input for some output; taps
// outside only ever multiply padding (a 3x3, pad-1 kernel on a 1x1 input uses only its centre; at stride 2 on a
// 2x2 input, its last two rows and columns). Convolving with the kernel cropped to these taps, the padding
// reduced by i0 and j0 and OH, OW kept, gives the same output with less GEMM work. Empty when no tap is live.
struct LiveTaps {
  int64_t i0 = 0, i1 = 0, j0 = 0, j1 = 0;
  bool crops(const Conv2dShape& s) const { return i1 > i0 && j1 > j0 && (i1 - i0 < s.kh || j1 - j0 < s.kw); }
};

inline LiveTaps live_taps(const Conv2dShape& s) {
  // Tap k of a dimension is live if some output o in [0, out) has 0 <= o*stride - pad + k < in.
  auto live = [](int64_t k, int64_t pad, int64_t stride, int64_t in, int64_t out) {
    int64_t first = pad - k, last = in - 1 + pad - k;  // o*stride must lie in [first, last]
    if (last < 0) return false;
    int64_t lo = first <= 0 ? 0 : (first + stride - 1) / stride;
    return lo < out && lo * stride <= last;
  };
  LiveTaps t;
  t.i0 = s.kh, t.j0 = s.kw;
  for (int64_t i = 0; i < s.kh; ++i)
    if (live(i, s.pad_h, s.stride_h, s.h, s.oh)) t.i0 = std::min(t.i0, i), t.i1 = i + 1;
  for (int64_t j = 0; j < s.kw; ++j)
    if (live(j, s.pad_w, s.stride_w, s.w, s.ow)) t.j0 = std::min(t.j0, j), t.j1 = j + 1;
  if (t.i1 <= t.i0 || t.j1 <= t.j0) t = LiveTaps{};
  return t;
}

// col2im's gather, in every layout and on both devices: calls f(a, b, oh, ow) for each kernel tap (a, b) through
// which output pixel (oh, ow) reads input pixel (ih, iw), i.e. oh*sh - ph + a == ih and ow*sw - pw + b == iw, in tap
// order (so sums come out the same everywhere).
template <class I, class F>
KERNELS_HOST_DEVICE inline void for_each_reading_tap(I ih, I iw, I KH, I KW, I sh, I sw, I ph, I pw, I OH, I OW,
                                                     F&& f) {
  for (I a = 0; a < KH; ++a) {
    const I yy = ih + ph - a;
    if (yy < 0) break;  // more negative with a
    if (yy % sh != 0 || yy / sh >= OH) continue;
    for (I b = 0; b < KW; ++b) {
      const I xx = iw + pw - b;
      if (xx < 0) break;
      if (xx % sw != 0 || xx / sw >= OW) continue;
      f(a, b, yy / sh, xx / sw);
    }
  }
}

// The convolution with the kernel cropped to the live taps (see LiveTaps).
inline Conv2dShape cropped(const Conv2dShape& s, const LiveTaps& t) {
  Conv2dShape c = s;
  c.kh = t.i1 - t.i0, c.kw = t.j1 - t.j0;
  c.pad_h = s.pad_h - t.i0, c.pad_w = s.pad_w - t.j0;  // >= 0: tap i = pad is always live when it exists
  return c;
}

// Column buffer budgets per chunk, in elements. CPU: 16M (64 MB in float) keeps the GEMM's N dimension in the
// tens of thousands, which is all OpenBLAS needs to run at full speed. CUDA: 64M (256 MB in float); with ResNet
// shapes a whole batch of 128 at 96x96 fits in one chunk, so one GEMM covers the batch. models/memory.h sizes
// the scratch from these.
constexpr int64_t kCpuConvChunkElems = int64_t(1) << 24;
constexpr int64_t kCudaConvChunkElems = int64_t(1) << 26;

// Images per chunk so that the column buffer [C*KH*KW, nb*OH*OW] and the GEMM output [OC, nb*OH*OW] each hold
// at most max_elems elements (but always at least one image). The same for NHWC, whose buffers are their
// transposes.
inline int64_t conv_chunk_images(const Conv2dShape& s, int64_t max_elems) {
  int64_t per_image = std::max<int64_t>(std::max(s.ckk(), s.oc) * s.out_pixels(), 1);
  return std::max<int64_t>(1, std::min<int64_t>(s.n, max_elems / per_image));
}

namespace cpu {
// x: nb images [nb, C, H, W] -> col [C*KH*KW, nb*OH*OW] (row (c*KH + i)*KW + j, column img*OH*OW + oh*OW + ow).
// NHWC: x [nb, H, W, C] -> col [nb*OH*OW, KH*KW*C] (row img*OH*OW + oh*OW + ow, column (i*KW + j)*C + c).
template <class T>
void im2col(const Conv2dShape& s, const T* x, int64_t nb, T* col);
// The adjoint of im2col: x (nb images, in s.layout) = sum of the col entries that read each pixel (overwrites x).
template <class T>
void col2im(const Conv2dShape& s, const T* col, int64_t nb, T* x);
// bias may be null.
template <class T>
void conv2d_forward(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y);
// Any of gx, gw, gb may be null (not wanted). gx, gw, gb are overwritten, not accumulated.
template <class T>
void conv2d_backward(const Conv2dShape& s, const T* x, const T* w, const T* gy, T* gx, T* gw, T* gb);
// y[n, oc, :, :] += bias[oc] (NHWC: y[n, :, :, oc])
template <class T>
void conv2d_add_bias(const Conv2dShape& s, const T* bias, T* y);
// gb[oc] = sum of gy[n, oc, :, :] over n (NHWC: of gy[n, :, :, oc])
template <class T>
void conv2d_bias_grad(const Conv2dShape& s, const T* gy, T* gb);
}  // namespace cpu

namespace cuda {
template <class T>
void im2col(const Conv2dShape& s, const T* x, int64_t nb, T* col);
template <class T>
void col2im(const Conv2dShape& s, const T* col, int64_t nb, T* x);
template <class T>
void conv2d_forward(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y);
template <class T>
void conv2d_backward(const Conv2dShape& s, const T* x, const T* w, const T* gy, T* gx, T* gw, T* gb);
template <class T>
void conv2d_add_bias(const Conv2dShape& s, const T* bias, T* y);
template <class T>
void conv2d_bias_grad(const Conv2dShape& s, const T* gy, T* gb);
}  // namespace cuda

// cuDNN (legacy convolution API of cuDNN 9); defined only in builds with ENGINE_HAVE_CUDNN. Same contract.
namespace cudnn {
template <class T>
void conv2d_forward(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y);
template <class T>
void conv2d_backward(const Conv2dShape& s, const T* x, const T* w, const T* gy, T* gx, T* gw, T* gb);
}  // namespace cudnn

}  // namespace kernels

// The explicit instantiations that kernels/cpu/conv.cpp and kernels/cuda/conv.cu both compile, each inside its own
// namespace, for every storage type (kernels/dtype.h), so the two twins always provide the same set.
#define KERNELS_CONV_INSTANTIATE(T)                                                               \
  template void im2col<T>(const Conv2dShape&, const T*, int64_t, T*);                             \
  template void col2im<T>(const Conv2dShape&, const T*, int64_t, T*);                             \
  template void conv2d_forward<T>(const Conv2dShape&, const T*, const T*, const T*, T*);          \
  template void conv2d_backward<T>(const Conv2dShape&, const T*, const T*, const T*, T*, T*, T*); \
  template void conv2d_add_bias<T>(const Conv2dShape&, const T*, T*);                             \
  template void conv2d_bias_grad<T>(const Conv2dShape&, const T*, T*);
#define KERNELS_CONV_INSTANTIATIONS KERNELS_FOR_EACH_STORAGE(KERNELS_CONV_INSTANTIATE)
