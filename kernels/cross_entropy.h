// Softmax cross-entropy with label smoothing over logits [n, c] and int32 labels [n], mean over rows:
//   target = (1 - eps) * onehot(label) + eps / c
//   loss   = (1/n) * sum_rows [ logsumexp(z) - sum_j target_j * z_j ]      (logsumexp with the row max subtracted)
//   grad   = (softmax(z) - target) / n                                     (written in the same pass; may be null)
// Row terms are summed in double in row order, so the loss does not depend on the thread count.
//
// Labels outside [0, c) are not read through: the forward returns the first row holding one (or -1 when all are
// valid) and the loss/grad contents are then unspecified. On CUDA this costs one small device-to-host copy per
// call (a synchronisation): the only host sync of the loss, and it keeps a bad label from passing silently.
#pragma once
#include <cstdint>

namespace kernels {

struct CrossEntropyShape {
  int64_t n = 0, c = 0;
  double label_smoothing = 0.0;
};

namespace cpu {
template <class T>
int64_t cross_entropy_forward(const T* logits, const int32_t* labels, T* loss, T* grad, const CrossEntropyShape& s);
// gx = saved_grad * (*gy): gy is the loss's incoming gradient, one element on the same device.
template <class T>
void cross_entropy_backward(const T* saved_grad, const T* gy, T* gx, int64_t count);
}  // namespace cpu

namespace cuda {
template <class T>
int64_t cross_entropy_forward(const T* logits, const int32_t* labels, T* loss, T* grad, const CrossEntropyShape& s);
template <class T>
void cross_entropy_backward(const T* saved_grad, const T* gy, T* gx, int64_t count);
}  // namespace cuda

}  // namespace kernels

// The explicit instantiations that kernels/cpu/cross_entropy.cpp and kernels/cuda/cross_entropy.cu both compile, each
// inside its own namespace, so the two twins always provide the same set.
#define KERNELS_CROSS_ENTROPY_INSTANTIATE(T)                                                             \
  template int64_t cross_entropy_forward<T>(const T*, const int32_t*, T*, T*, const CrossEntropyShape&); \
  template void cross_entropy_backward<T>(const T*, const T*, T*, int64_t);
#define KERNELS_CROSS_ENTROPY_INSTANTIATIONS \
  KERNELS_CROSS_ENTROPY_INSTANTIATE(float) KERNELS_CROSS_ENTROPY_INSTANTIATE(double)
