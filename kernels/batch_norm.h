// Batch normalisation per channel (torch.nn.functional.batch_norm semantics), in either layout
// (BatchNormShape::layout): NCHW, x [N, C, H*W], each channel N planes of H*W contiguous values; or NHWC (channels
// last), x [N*H*W, C], each channel a column of N*H*W rows, C contiguous values a row. Every variant below (train,
// eval, fused ReLU, fused residual + ReLU, backward) exists in both, with the same entry points; statistics,
// running stats and gradients agree between the layouts up to the order of the sums.
//
//  forward_train: mean and biased variance of the batch (m = N*H*W values per channel) normalise x;
//                 save_mean / save_invstd = 1/sqrt(var + eps) are kept for backward; running stats (may be
//                 null) are updated in place: r = (1 - momentum) * r + momentum * stat, with the UNBIASED
//                 variance var * m / (m - 1). Needs m > 1.
//  forward_eval:  normalises with the running stats; save_mean / save_invstd get the running mean and
//                 1/sqrt(running_var + eps), so backward is the same call for both modes.
//  backward:      pass 1 per channel: sum_gy = sum(gy) (= dbeta) and sum_gy_xhat = sum(gy * xhat) (= dgamma);
//                 pass 2 training: gx = gamma * invstd / m * (m * gy - sum_gy - xhat * sum_gy_xhat)
//                        eval:     gx = gy * gamma * invstd.
//                 gx, dgamma, dbeta may each be null (not wanted); gamma/beta null means no affine (gamma = 1,
//                 beta = 0). gx is overwritten, not accumulated.
//  relu:          fused ReLU (conv -> BN -> ReLU in every block): forward writes max(y, 0); backward takes gy
//                 where the forward's y = (x - mean) * gamma * invstd + beta was > 0, else 0, recomputing y from
//                 x, the saved statistics and beta (pass the forward's beta), so y itself is never stored and the
//                 separate ReLU passes (2 forward, 3 backward) disappear. The CUDA kernels compute y with explicit
//                 FMAs in both directions, so the mask is exactly the forward's.
//  residual:      fused residual join (the end of every residual block): forward writes y = bn(x) + r (then the
//                 ReLU), r of x's shape in storage T, null for none. Backward then takes the mask from the
//                 forward's output y (pass it) instead of recomputing it: y > 0 is read, so the mask is exact on
//                 both devices, and y costs nothing, since the next layer keeps it anyway; a recompute would have
//                 to read r as well. gr receives the residual's gradient, gy masked (gy where y > 0, else 0;
//                 gy itself without relu); it is written first, and the rest of backward runs on it unmasked,
//                 because BN's gradient is that same masked gy.
//
// Loads of T go through to_compute / convert_value<double> and stores through to_storage / convert_value<T>, so
// the bodies compile for any storage type of kernels/dtype.h (bf16 included), with no arithmetic on T.
//
// NHWC: the CPU splits the N*H*W rows into a fixed number of contiguous blocks (not one per thread), each
// accumulating C-long rows of double sums, and adds the blocks in order; CUDA gives each block a tile of 32
// channels and a slice of rows (32 threads along C, so loads coalesce), reduces the tile's rows in shared memory
// in a fixed order and finishes with the same per-channel stage 2 as NCHW. No float atomics: deterministic too.
// cuDNN's batch norm (below) stays NCHW-only and rejects NHWC by name.
//
// Sums accumulate in double on both devices. NCHW: the CPU splits the work by (n, c) plane in memory order and adds the
// per-plane partial sums over n in a fixed order; CUDA reduces in two stages (blocks over slices of one channel
// write partial sums, one thread per channel adds them in a fixed order). Both are deterministic. Forward
// statistics: the CPU is two-pass (mean, then squared deviations), the exact reference; CUDA uses shifted sums
// s1 = sum(x - K), s2 = sum((x - K)^2) with K = the channel's first value, var = s2/m - (s1/m)^2, which merge
// by plain addition across blocks and keep the cancellation small when the mean is large against the spread.
// The per-channel formulas (invstd, the running-statistics update) and the input gradient are written once below.
// The affine map stays each twin's own on purpose: the CPU computes it in double as the reference, CUDA in
// compute_t<T> with explicit FMAs so that the fused-ReLU backward recomputes exactly the forward's y.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/host_device.h"
#include "kernels/layout.h"

namespace kernels {

struct BatchNormShape {
  int64_t n = 0, c = 0, hw = 0;  // x is [n, c, hw] (H*W flattened), or [n, hw, c] with Layout::nhwc
  Layout layout = Layout::nchw;
  // Where channel c's value of pixel i of image n lives.
  KERNELS_HOST_DEVICE int64_t index(int64_t n_, int64_t c_, int64_t i) const {
    return layout == Layout::nhwc ? (n_ * hw + i) * c + c_ : (n_ * c + c_) * hw + i;
  }
};

KERNELS_HOST_DEVICE inline double batch_norm_invstd(double var, double eps) { return 1.0 / sqrt(var + eps); }

// Channel c's running statistics after a training batch of m values per channel with biased variance var (either
// pointer may be null): r = (1 - momentum) * r + momentum * stat, the variance unbiased.
template <class T>
KERNELS_HOST_DEVICE inline void batch_norm_update_running(T* running_mean, T* running_var, int64_t c, double mean,
                                                          double var, double m, double momentum) {
  if (running_mean) running_mean[c] = T((1 - momentum) * double(running_mean[c]) + momentum * mean);
  if (running_var) running_var[c] = T((1 - momentum) * double(running_var[c]) + momentum * var * m / (m - 1));
}

// The training-mode input gradient of one element, in the compute type A (CPU: double; CUDA: T):
// gx = k * (g - mean_gy - (x - mean) * coef) with k = gamma * invstd, mean_gy = sum_gy / m and
// coef = invstd * sum_gy_xhat / m; g is gy, or 0 where the fused ReLU's output was 0.
template <class A>
KERNELS_HOST_DEVICE inline A batch_norm_input_grad(A k, A g, A mean_gy, A x_centered, A coef) {
  return k * (g - mean_gy - x_centered * coef);
}

namespace cpu {
// x, y, gy, gx are storage (T); gamma, beta, the statistics and dgamma, dbeta are compute_t<T>.
template <class T>
void batch_norm_forward_train(const T* x, const compute_t<T>* gamma, const compute_t<T>* beta, T* y,
                              compute_t<T>* save_mean, compute_t<T>* save_invstd, compute_t<T>* running_mean,
                              compute_t<T>* running_var, const BatchNormShape& s, double momentum, double eps,
                              bool relu = false, const T* residual = nullptr);
template <class T>
void batch_norm_forward_eval(const T* x, const compute_t<T>* gamma, const compute_t<T>* beta,
                             const compute_t<T>* running_mean, const compute_t<T>* running_var, T* y,
                             compute_t<T>* save_mean, compute_t<T>* save_invstd, const BatchNormShape& s, double eps,
                             bool relu = false, const T* residual = nullptr);
template <class T>
void batch_norm_backward(const T* x, const T* gy, const compute_t<T>* gamma, const compute_t<T>* save_mean,
                         const compute_t<T>* save_invstd, T* gx, compute_t<T>* dgamma, compute_t<T>* dbeta,
                         const BatchNormShape& s, bool training, bool relu = false, const compute_t<T>* beta = nullptr,
                         const T* y = nullptr, T* gr = nullptr);
}  // namespace cpu

namespace cuda {
// x, y, gy, gx are storage (T); gamma, beta, the statistics and dgamma, dbeta are compute_t<T>.
template <class T>
void batch_norm_forward_train(const T* x, const compute_t<T>* gamma, const compute_t<T>* beta, T* y,
                              compute_t<T>* save_mean, compute_t<T>* save_invstd, compute_t<T>* running_mean,
                              compute_t<T>* running_var, const BatchNormShape& s, double momentum, double eps,
                              bool relu = false, const T* residual = nullptr);
template <class T>
void batch_norm_forward_eval(const T* x, const compute_t<T>* gamma, const compute_t<T>* beta,
                             const compute_t<T>* running_mean, const compute_t<T>* running_var, T* y,
                             compute_t<T>* save_mean, compute_t<T>* save_invstd, const BatchNormShape& s, double eps,
                             bool relu = false, const T* residual = nullptr);
template <class T>
void batch_norm_backward(const T* x, const T* gy, const compute_t<T>* gamma, const compute_t<T>* save_mean,
                         const compute_t<T>* save_invstd, T* gx, compute_t<T>* dgamma, compute_t<T>* dbeta,
                         const BatchNormShape& s, bool training, bool relu = false, const compute_t<T>* beta = nullptr,
                         const T* y = nullptr, T* gr = nullptr);
}  // namespace cuda

#if ENGINE_HAVE_CUDNN
// Training mode through cuDNN (cudnnBatchNormalizationForwardTraining / Backward, CUDNN_BATCHNORM_SPATIAL): the
// same statistics, running-stat rule (cuDNN's running variance is the unbiased one) and saved mean/invstd as the
// native kernels. cuDNN needs gamma and beta (pass ones/zeros when there is no affine) and writes all of gx,
// dgamma, dbeta: any of them may be null here and then goes to scratch. NCHW only: a shape with Layout::nhwc is a
// named error (use the kernels::cuda twins, which have NHWC). Eval mode has no cuDNN variant here: it is
// a per-channel affine map, which the native kernels already do in one pass.
namespace cudnn {
template <class T>
void batch_norm_forward_train(const T* x, const T* gamma, const T* beta, T* y, T* save_mean, T* save_invstd,
                              T* running_mean, T* running_var, const BatchNormShape& s, double momentum, double eps);
template <class T>
void batch_norm_backward_train(const T* x, const T* gy, const T* gamma, const T* save_mean, const T* save_invstd, T* gx,
                               T* dgamma, T* dbeta, const BatchNormShape& s, double eps);
}  // namespace cudnn
#endif

}  // namespace kernels

// The explicit instantiations that kernels/cpu/batch_norm.cpp and kernels/cuda/batch_norm.cu both compile, each inside
// its own namespace, for every storage type (kernels/dtype.h), so the two twins always provide the same set.
#define KERNELS_BATCH_NORM_INSTANTIATE(T)                                                                            \
  template void batch_norm_forward_train<T>(const T*, const compute_t<T>*, const compute_t<T>*, T*, compute_t<T>*,   \
                                            compute_t<T>*, compute_t<T>*, compute_t<T>*, const BatchNormShape&,      \
                                            double, double, bool, const T*);                                         \
  template void batch_norm_forward_eval<T>(const T*, const compute_t<T>*, const compute_t<T>*, const compute_t<T>*,  \
                                           const compute_t<T>*, T*, compute_t<T>*, compute_t<T>*,                    \
                                           const BatchNormShape&, double, bool, const T*);                           \
  template void batch_norm_backward<T>(const T*, const T*, const compute_t<T>*, const compute_t<T>*,                 \
                                       const compute_t<T>*, T*, compute_t<T>*, compute_t<T>*, const BatchNormShape&, \
                                       bool, bool, const compute_t<T>*, const T*, T*);
#define KERNELS_BATCH_NORM_INSTANTIATIONS KERNELS_FOR_EACH_STORAGE(KERNELS_BATCH_NORM_INSTANTIATE)
