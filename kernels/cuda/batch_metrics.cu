#include "kernels/batch_metrics.h"
#include "kernels/cuda/common.cuh"

namespace kernels::cuda {
namespace {
constexpr int kBlock = 256;

// One block: a batch is at most a few thousand rows, and a single writer keeps acc free of atomics.
template <class T>
__global__ void batch_metrics_kernel(const T* logits, const int32_t* labels, int64_t n, int64_t classes,
                                     const compute_t<T>* loss, double loss_bound, int64_t step, double* acc) {
  extern __shared__ int counts[];  // [classes] correct, [classes] total, [1] correct overall
  for (int64_t c = threadIdx.x; c < 2 * classes + 1; c += blockDim.x) counts[c] = 0;
  __syncthreads();
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const T* row = logits + i * classes;
    int64_t best = 0;
    for (int64_t c = 1; c < classes; ++c)
      if (row[c] > row[best]) best = c;
    const int32_t y = labels[i];
    const int hit = best == y;
    if (hit) atomicAdd(&counts[2 * classes], 1);
    if (y >= 0 && y < classes) {
      if (hit) atomicAdd(&counts[y], 1);
      atomicAdd(&counts[classes + y], 1);
    }
  }
  __syncthreads();
  for (int64_t c = threadIdx.x; c < classes; c += blockDim.x) {
    acc[kMetricsHeader + c] += counts[c];
    acc[kMetricsHeader + classes + c] += counts[classes + c];
  }
  if (threadIdx.x == 0) {
    acc[1] += counts[2 * classes];
    acc[2] += static_cast<double>(n);
    if (loss) {
      const double l = static_cast<double>(*loss);
      acc[0] += l * static_cast<double>(n);
      if (!(isfinite(l) && l <= loss_bound) && acc[3] < 0) {
        acc[3] = static_cast<double>(step);
        acc[4] = l;
      }
    }
  }
}
}  // namespace

template <class T>
void accumulate_batch_metrics(const T* logits, const int32_t* labels, int64_t n, int64_t classes,
                              const compute_t<T>* loss, double loss_bound, int64_t step, double* acc) {
  const size_t smem = (2 * classes + 1) * sizeof(int);
  batch_metrics_kernel<T><<<1, kBlock, smem, stream()>>>(logits, labels, n, classes, loss, loss_bound, step, acc);
  CUDA_CHECK_LAUNCH();
}

KERNELS_BATCH_METRICS_INSTANTIATIONS

}  // namespace kernels::cuda
