// 2-D convolution (cross-correlation, as PyTorch) on NCHW tensors, by im2col over the batch and one GEMM.
//
// Forward, per chunk of nb images (chunks keep the scratch bounded):
//   col [C*KH*KW, nb*OH*OW] = im2col(x)            one pass over the whole chunk, not one GEMM per image
//   out [OC, nb*OH*OW]      = W [OC, C*KH*KW] x col
//   y   [nb, OC, OH, OW]    = permute(out) + bias   (with nb == 1, `out` already is y and the GEMM writes there)
// Backward, per chunk (col is recomputed, never stored between forward and backward):
//   gy'  [OC, nb*OH*OW]  = permute(gy)
//   gW  += gy' x col^T                              (beta = 1 after the first chunk)
//   gcol = W^T x gy';  gx = col2im(gcol)           (col2im overwrites gx; on CUDA each input pixel gathers
//                                                   its contributions, so no atomics)
//   gb   = sum of gy over N, OH, OW
// The CPU and CUDA versions have the same signatures and the same algorithm; scratch on CUDA comes from the
// caching allocator. The optional cuDNN versions (kernels/cudnn/conv.cpp) exist only when ENGINE_HAVE_CUDNN.
#pragma once
#include <algorithm>
#include <cstdint>

namespace kernels {

struct Conv2dShape {
  int64_t n = 0, c = 0, h = 0, w = 0;  // input [N, C, H, W]
  int64_t oc = 0, kh = 0, kw = 0;      // weight [OC, C, KH, KW]
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
  int64_t oh = 0, ow = 0;  // output [N, OC, OH, OW]

  int64_t ckk() const { return c * kh * kw; }
  int64_t out_pixels() const { return oh * ow; }
  // A 1x1, stride-1, unpadded convolution: im2col of a single image is the image itself.
  bool pointwise() const { return kh == 1 && kw == 1 && stride_h == 1 && stride_w == 1 && pad_h == 0 && pad_w == 0; }
};

// Images per chunk so that the column buffer [C*KH*KW, nb*OH*OW] and the GEMM output [OC, nb*OH*OW] each hold
// at most max_elems elements (but always at least one image).
inline int64_t conv_chunk_images(const Conv2dShape& s, int64_t max_elems) {
  int64_t per_image = std::max<int64_t>(std::max(s.ckk(), s.oc) * s.out_pixels(), 1);
  return std::max<int64_t>(1, std::min<int64_t>(s.n, max_elems / per_image));
}

namespace cpu {
// x: nb images [nb, C, H, W] -> col [C*KH*KW, nb*OH*OW] (row (c*KH + i)*KW + j, column img*OH*OW + oh*OW + ow).
template <class T> void im2col(const Conv2dShape& s, const T* x, int64_t nb, T* col);
// The adjoint of im2col: x [nb, C, H, W] = sum of the col entries that read each pixel (overwrites x).
template <class T> void col2im(const Conv2dShape& s, const T* col, int64_t nb, T* x);
// bias may be null.
template <class T> void conv2d_forward(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y);
// Any of gx, gw, gb may be null (not wanted). gx, gw, gb are overwritten, not accumulated.
template <class T>
void conv2d_backward(const Conv2dShape& s, const T* x, const T* w, const T* gy, T* gx, T* gw, T* gb);
// y[n, oc, :, :] += bias[oc]
template <class T> void conv2d_add_bias(const Conv2dShape& s, const T* bias, T* y);
// gb[oc] = sum of gy[n, oc, :, :] over n
template <class T> void conv2d_bias_grad(const Conv2dShape& s, const T* gy, T* gb);
}  // namespace cpu

namespace cuda {
template <class T> void im2col(const Conv2dShape& s, const T* x, int64_t nb, T* col);
template <class T> void col2im(const Conv2dShape& s, const T* col, int64_t nb, T* x);
template <class T> void conv2d_forward(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y);
template <class T>
void conv2d_backward(const Conv2dShape& s, const T* x, const T* w, const T* gy, T* gx, T* gw, T* gb);
template <class T> void conv2d_add_bias(const Conv2dShape& s, const T* bias, T* y);
template <class T> void conv2d_bias_grad(const Conv2dShape& s, const T* gy, T* gb);
}  // namespace cuda

// cuDNN (legacy convolution API of cuDNN 9); defined only in builds with ENGINE_HAVE_CUDNN. Same contract.
namespace cudnn {
template <class T> void conv2d_forward(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y);
template <class T>
void conv2d_backward(const Conv2dShape& s, const T* x, const T* w, const T* gy, T* gx, T* gw, T* gb);
}  // namespace cudnn

}  // namespace kernels
