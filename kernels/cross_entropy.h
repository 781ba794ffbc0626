// Softmax cross-entropy with label smoothing over logits [n, c] and int32 labels [n], mean over rows:
//   target = (1 - eps) * onehot(label) + eps / c
//   loss   = (1/n) * sum_rows [ logsumexp(z) - sum_j target_j * z_j ]      (logsumexp with the row max subtracted)
//   grad   = (softmax(z) - target) / n                                     (written in the same pass; may be null)
// Row terms are summed in double in row order, so the loss does not depend on the thread count.
//
// A label outside [0, c) is never read through: that row's gradient is zero and the loss is NaN (so the value
// cannot pass for a result). Finding one is the caller's job on the CPU (cpu::first_bad_label, before the
// forward: an immediate error). On CUDA the forward keeps the step free of host syncs: the kernel writes the
// first bad row of the first call that had one (row, label, shape, which call) into a device record, which
// cuda::take_label_error() copies back when results are read anyway (engine::check_device_errors).
#pragma once
#include <cstdint>
#include <string>

#include "kernels/dtype.h"
#include "kernels/host_device.h"

namespace kernels {

struct CrossEntropyShape {
  int64_t n = 0, c = 0;
  double label_smoothing = 0.0;
};

// "label 7 at row 1 is outside [0, 5) for logits [3, 5]": the one wording of the error, CPU and CUDA.
inline std::string bad_label_text(int64_t label, int64_t row, const CrossEntropyShape& s) {
  return "label " + std::to_string(label) + " at row " + std::to_string(row) + " is outside [0, " +
         std::to_string(s.c) + ") for logits [" + std::to_string(s.n) + ", " + std::to_string(s.c) + "]";
}

// The row formulas both twins run, in double. A row's reductions (its max mx, sum_j exp(z_j - mx) = se and
// sum_j z_j = sz) are each device's own (a loop, a warp).
struct CrossEntropyTargets {
  double eps, off, on, inv_n;  // smoothing, target of a wrong class, of the label's class, 1/n
};
KERNELS_HOST_DEVICE inline CrossEntropyTargets cross_entropy_targets(const CrossEntropyShape& s) {
  const double off = s.label_smoothing / double(s.c);
  return {s.label_smoothing, off, 1.0 - s.label_smoothing + off, 1.0 / double(s.n)};
}
// logsumexp(z) - sum_j target_j * z_j, with z_y the label's logit.
KERNELS_HOST_DEVICE inline double cross_entropy_row_loss(const CrossEntropyTargets& t, double mx, double log_se,
                                                         double sz, double z_y) {
  return mx + log_se - (1.0 - t.eps) * z_y - t.off * sz;
}
// (softmax_j - target_j) / n, with e_j = exp(z_j - mx).
KERNELS_HOST_DEVICE inline double cross_entropy_grad(const CrossEntropyTargets& t, double e_j, double se,
                                                     bool is_label) {
  return (e_j / se - (is_label ? t.on : t.off)) * t.inv_n;
}

namespace cpu {
// The first row whose label is outside [0, s.c), or -1.
int64_t first_bad_label(const int32_t* labels, const CrossEntropyShape& s);
template <class T>
void cross_entropy_forward(const T* logits, const int32_t* labels, compute_t<T>* loss, T* grad,
                           const CrossEntropyShape& s);
// gx = saved_grad * (*gy): gy is the loss's incoming gradient, one element on the same device.
template <class T>
void cross_entropy_backward(const T* saved_grad, const compute_t<T>* gy, T* gx, int64_t count);
}  // namespace cpu

namespace cuda {
template <class T>
void cross_entropy_forward(const T* logits, const int32_t* labels, compute_t<T>* loss, T* grad,
                           const CrossEntropyShape& s);

// The device's label-error record, copied to the host and cleared (waits for the engine's stream).
struct LabelError {
  bool found = false;
  int64_t row = 0, label = 0;  // the first bad row of that call and its label
  CrossEntropyShape shape;     // n, c of that call (label_smoothing not kept)
  int64_t call = 0;            // 1 = the first non-empty cross_entropy_forward since the previous take_label_error()
};
LabelError take_label_error();
template <class T>
void cross_entropy_backward(const T* saved_grad, const compute_t<T>* gy, T* gx, int64_t count);
}  // namespace cuda

}  // namespace kernels

// The explicit instantiations that kernels/cpu/cross_entropy.cpp and kernels/cuda/cross_entropy.cu both compile, each
// inside its own namespace, for every storage type (kernels/dtype.h), so the two twins always provide the same set.
#define KERNELS_CROSS_ENTROPY_INSTANTIATE(T)                                                                     \
  template void cross_entropy_forward<T>(const T*, const int32_t*, compute_t<T>*, T*, const CrossEntropyShape&); \
  template void cross_entropy_backward<T>(const T*, const compute_t<T>*, T*, int64_t);
#define KERNELS_CROSS_ENTROPY_INSTANTIATIONS KERNELS_FOR_EACH_COMPUTE(KERNELS_CROSS_ENTROPY_INSTANTIATE)
