// Every op front-end, declared in one place: each op's definition and backward rule is engine/ops/<op>.cpp, its
// kernels kernels/<op>.h with kernels/cpu/<op>.cpp and kernels/cuda/<op>.cu, its tests one entry of
// tests/ops/test_op_table.cpp (docs/ARCHITECTURE.md, "Adding an op").
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/autograd.h"
#include "engine/tensor.h"
#include "kernels/batch_metrics.h"
#include "kernels/image_batch.h"
#include "kernels/layout.h"

namespace engine {

// The memory order of 4-D activations (kernels/layout.h): nchw [N, C, H, W] (the default) or nhwc [N, H, W, C]
// (channels last). A tensor carries no layout: an NHWC activation is what it physically is, a [N, H, W, C] tensor,
// and each op that has both forms takes the layout in its parameters (conv2d, batch norm, pooling, shortcut_a), so
// its shape checks stay explicit. Models switch with nn::Module::set_layout.
using Layout = kernels::Layout;
const char* layout_name(Layout l);             // "nchw", "nhwc"
Layout parse_layout(const std::string& name);  // "nchw", "nhwc"; throws on others

// ---------------- to_channels_last, to_channels_first (engine/ops/layout.cpp) ----------------
// The 4-D permutes [N, C, H, W] -> [N, H, W, C] (as x.permute(0, 2, 3, 1).contiguous()) and back, each the
// other's backward. Exact in every dtype. With C = 1 (or H = W = 1) the memory order is the same, and the result
// is a view (a reshape), no copy. A conv weight [OC, C, KH, KW] goes to NHWC's [OC, KH, KW, C] the same way.
Tensor to_channels_last(const Tensor& x);
Tensor to_channels_first(const Tensor& x);
// The shape to_channels_last gives a 4-D shape: [N, C, H, W] -> [N, H, W, C].
Shape channels_last_shape(const Shape& nchw);

// ---------------- add, scale, relu, flatten, cast (engine/ops/elementwise.cpp) ----------------
// Elementwise ops: add (the residual join), scale, relu. Same shape, dtype and device; no broadcasting.
Tensor add(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& x, double alpha);
Tensor relu(const Tensor& x);
// Flattens all but the first dimension: [N, ...] -> [N, prod(...)], a view.
Tensor flatten(const Tensor& x);
// x converted to dtype (rounded to nearest even when narrower), differentiable: the gradient is converted back
// to x's dtype, as PyTorch's .to(dtype). x itself when it already has that dtype. Mixed precision is built from
// it: float32 master weights cast to bf16 for a layer, logits cast to float32 for the loss.
Tensor cast(const Tensor& x, DType dtype);
// cast(x, converted.dtype()) whose result is already at hand: `converted` must hold x's values converted (the
// caller's promise; a parameter's cached bf16 copy, nn::param_for_input). Returns a new handle on converted's
// memory with the same backward as cast (the gradient converted to x's dtype) recorded; no kernel runs. With
// channels_last, converted is to_channels_last(cast(x)) (a channels-last conv weight's copy), and the gradient
// is permuted back as well.
Tensor cast_precomputed(const Tensor& x, const Tensor& converted, bool channels_last = false);

// ---------------- linear (engine/ops/linear.cpp) ----------------
// linear: x [N, in] @ weight[out, in]^T + bias[out] -> [N, out] (bias optional), as torch.nn.functional.linear.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);

// ---------------- conv2d (engine/ops/conv2d.cpp) ----------------
// conv2d: NCHW input [N, C, H, W], weight [OC, C, KH, KW], optional bias [OC] -> [N, OC, OH, OW] with
// OH = (H + 2*pad_h - KH) / stride_h + 1. Native path: im2col over the batch + one GEMM (OpenBLAS / cuBLAS).
// With layout nhwc: input [N, H, W, C], weight [OC, KH, KW, C] (to_channels_last of the NCHW weight), output
// [N, OH, OW, OC]; 1x1 convolutions are one GEMM with no im2col (kernels/conv.h).
struct Conv2dParams {
  int stride_h = 1, stride_w = 1;
  int pad_h = 0, pad_w = 0;
  Layout layout = Layout::nchw;
};

// Which implementation CUDA convolutions use. Native (ours) is the default and the reference; cuDNN is
// optional and only exists in builds that found cuDNN. `fastest` (cuDNN builds only) times both on the first
// call of each shape, direction, dtype and TF32 setting (as cudnn.benchmark times cuDNN's own algorithms) and
// then always runs the faster (ours where cuDNN cannot run the shape, with a notice); the choice is cached for the
// process. The CPU always runs the native path.
enum class ConvEngine { native, cudnn, fastest };
void set_conv_engine(ConvEngine e);  // throws if cuDNN was asked for but not compiled in
ConvEngine conv_engine();
bool cudnn_compiled();
ConvEngine parse_conv_engine(const std::string& name);  // "native", "cudnn", "fastest"; throws on others

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dParams& p);

// ------- batch_norm2d, batch_norm2d_relu, batch_norm2d_add_relu (engine/ops/batch_norm.cpp) -------
// batch_norm2d over NCHW, per channel, as torch.nn.functional.batch_norm:
//  training: normalise with the batch mean and biased variance; update running_mean/var in place with
//            running = (1 - momentum) * running + momentum * batch_stat, using the unbiased variance;
//  eval:     normalise with running_mean/var.
// gamma/beta [C] may be undefined (no affine). Running stats are buffers: updated without autograd.
// layout: x (and the residual) [N, C, H, W] or, with nhwc, [N, H, W, C]. cuDNN's batch norm is NCHW-only here, so
// NHWC always takes the native kernels, as bf16 does.
// Which implementation CUDA batch norm uses in training mode. Native (ours) is the default and the reference;
// cuDNN exists only in builds that found it. Eval mode and the CPU always run the native kernels.
enum class BatchNormEngine { native, cudnn };
void set_batch_norm_engine(BatchNormEngine e);  // throws if cuDNN was asked for but not compiled in
BatchNormEngine batch_norm_engine();

Tensor batch_norm2d(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean, Tensor& running_var,
                    bool training, double momentum = 0.1, double eps = 1e-5, Layout layout = Layout::nchw);

// relu(batch_norm2d(...)) in one op (every conv -> BN -> ReLU of a ResNet): one pass less forward, and backward
// masks the gradient while it reduces instead of a separate ReLU pass. With the cuDNN engine it is the two ops.
Tensor batch_norm2d_relu(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                         Tensor& running_var, bool training, double momentum = 0.1, double eps = 1e-5,
                         Layout layout = Layout::nchw);

// relu(batch_norm2d(x, ...) + residual) in one op: the end of every residual block (its last BN, the shortcut's
// add and the ReLU). residual has x's shape, dtype and device. One pass forward instead of three, one saved
// activation instead of three; backward masks gy with the saved output (y > 0), which is also the residual's
// gradient. Gradients for x, residual, gamma and beta. With the cuDNN engine it is the three ops.
Tensor batch_norm2d_add_relu(const Tensor& x, const Tensor& residual, const Tensor& gamma, const Tensor& beta,
                             Tensor& running_mean, Tensor& running_var, bool training, double momentum = 0.1,
                             double eps = 1e-5, Layout layout = Layout::nchw);

// ---------------- max_pool2d, adaptive_avg_pool2d (engine/ops/pool.cpp) ----------------
// Pooling over NCHW, or NHWC with the layout (max_pool2d's argmax stays ih * W + iw within the plane, as
// PyTorch's channels_last indices; adaptive_avg_pool2d gives [N, OH, OW, C]: at 1x1 the same memory as NCHW's).
//  max_pool2d: windows of kernel x kernel with stride and padding (padding counts as -inf), argmax saved for
//              backward; output (H + 2p - k) / s + 1 (floor mode, as PyTorch's default).
//  adaptive_avg_pool2d: output [N, C, OH, OW]; window i spans [floor(i*H/OH), ceil((i+1)*H/OH)), as PyTorch.
struct Pool2dParams {
  int kernel_h = 2, kernel_w = 2;
  int stride_h = 2, stride_w = 2;
  int pad_h = 0, pad_w = 0;
  Layout layout = Layout::nchw;
};

Tensor max_pool2d(const Tensor& x, const Pool2dParams& p);
Tensor adaptive_avg_pool2d(const Tensor& x, int out_h, int out_w, Layout layout = Layout::nchw);

// ---------------- cross_entropy (engine/ops/loss.cpp) ----------------
// cross_entropy: logits [N, C] (float), labels [N] (int32, values in [0, C)) -> scalar mean loss, as
// torch.nn.functional.cross_entropy with label_smoothing: target = (1 - eps) * onehot + eps / C.
// Softmax is computed stably (max subtracted); the gradient (softmax - target) / N is fused in the kernel.
Tensor cross_entropy(const Tensor& logits, const Tensor& labels, double label_smoothing = 0.0);

// ---------------- shortcut_a (engine/ops/shortcut.cpp) ----------------
// shortcut_a: the parameter-free "option A" shortcut of He et al. 2016 (Sec. 4.2, the CIFAR-10 nets).
// x [N, C, H, W] -> [N, out_channels, ceil(H/stride), ceil(W/stride)]: every stride-th pixel of x
// (x[:, :, ::stride, ::stride] in PyTorch), with x's channels placed at [pad_front, pad_front + C) and zeros
// elsewhere. It matches a 3x3 conv with padding 1 and the same stride in output size, so it can join a
// residual branch that changes the shape. Differentiable in x. With layout nhwc, x and y are [N, H, W, C].
Tensor shortcut_a(const Tensor& x, int out_channels, int stride, int pad_front, Layout layout = Layout::nchw);

// ---------------- the data path (engine/ops/data.cpp) ----------------
// The app data path's ops: uploading the uint8 dataset, assembling a training batch from it, and accumulating a
// batch's loss and accuracy on the device (kernels/image_batch.h, kernels/batch_metrics.h). Like every op they pick
// the kernel for the tensors' device; apps call these, never kernels::cuda directly.
// Copies `bytes` bytes from host memory into `dst`, on whichever device it lives.
void copy_from_host(Storage& dst, const void* src, std::size_t bytes);

// Fills x ([count, 1, p.out_h, p.out_w], f32 or f64) and y ([count], int32) from the uint8 `images` and int32
// `labels`, one sample per `specs` entry; the three pointers are on x's device.
void make_image_batch(const uint8_t* images, const int32_t* labels, const kernels::SampleSpec* specs, int64_t count,
                      const kernels::ImageBatchParams& p, Tensor& x, Tensor& y);

// Adds a batch to `acc` (f64 [kernels::kMetricsHeader + 2 * classes], on the logits' device): see
// kernels/batch_metrics.h for the layout. loss: the batch mean as one value, or undefined.
void accumulate_batch_metrics(const Tensor& logits, const Tensor& labels, const Tensor& loss, double loss_bound,
                              int64_t step, Tensor& acc);

}  // namespace engine
