// Accumulates a batch's loss and accuracy into a small float64 array that stays on the batch's device, so a
// training loop reads metrics only when it wants to print them (on CUDA a read is a host sync).
// Layout of acc (kMetricsHeader + 2 * classes doubles):
//   [0] sum of loss * n   [1] correct predictions   [2] examples
//   [3] first step whose loss was bad: not finite or above loss_bound (-1: none)   [4] that loss
//   [5, 5+C) correct per class (by label)   [5+C, 5+2C) examples per class
// Recording the first bad step on the device keeps the divergence check free of host syncs: the host sees it
// whenever it next reads the metrics.
// The prediction is the first index of the row's maximum logit (torch.argmax).
#pragma once
#include <cstdint>

#include "kernels/dtype.h"

namespace kernels {

constexpr int kMetricsHeader = 5;

namespace cpu {
// loss: one value (the batch mean) or null. The first step whose loss is not finite or exceeds loss_bound (pass
// +inf for no bound) is recorded in acc[3], its loss in acc[4].
template <class T>
void accumulate_batch_metrics(const T* logits, const int32_t* labels, int64_t n, int64_t classes,
                              const compute_t<T>* loss, double loss_bound, int64_t step, double* acc);
}  // namespace cpu
namespace cuda {
template <class T>
void accumulate_batch_metrics(const T* logits, const int32_t* labels, int64_t n, int64_t classes,
                              const compute_t<T>* loss, double loss_bound, int64_t step, double* acc);
}  // namespace cuda

}  // namespace kernels

// The explicit instantiations that kernels/cpu/batch_metrics.cpp and kernels/cuda/batch_metrics.cu both compile, each
// inside its own namespace, for every storage type (kernels/dtype.h), so the two twins always provide the same set.
#define KERNELS_BATCH_METRICS_INSTANTIATE(T)                                                                         \
  template void accumulate_batch_metrics<T>(const T*, const int32_t*, int64_t, int64_t, const compute_t<T>*, double, \
                                            int64_t, double*);
#define KERNELS_BATCH_METRICS_INSTANTIATIONS KERNELS_FOR_EACH_COMPUTE(KERNELS_BATCH_METRICS_INSTANTIATE)
