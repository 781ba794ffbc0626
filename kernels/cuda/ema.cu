// Multi-tensor EMA update, laid out as the SGD kernel: the table goes by value in chunks of kMaxTensors,
// blockIdx.y picks the tensor and a grid-stride loop over x covers its elements.
#include "kernels/cuda/common.cuh"
#include "kernels/ema.h"

namespace kernels::cuda {
namespace {
constexpr int kMaxTensors = 64;
constexpr int kBlock = 256;

struct Table {
  EmaTensor t[kMaxTensors];
};

template <class T>
__global__ void ema_kernel(Table table, T keep, T take) {
  const EmaTensor& et = table.t[blockIdx.y];
  T* e = static_cast<T*>(et.ema);
  const T* w = static_cast<const T*>(et.w);
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < et.n; i += (int64_t)blockDim.x * gridDim.x)
    e[i] = ema_value(e[i], w[i], keep, take);
}
}  // namespace

template <class T>
void ema_update(const EmaTensor* tensors, int count, double decay) {
  for (int start = 0; start < count; start += kMaxTensors) {
    const int m = count - start < kMaxTensors ? count - start : kMaxTensors;
    Table table{};
    int64_t max_n = 1;
    for (int i = 0; i < m; ++i) {
      table.t[i] = tensors[start + i];
      if (table.t[i].n > max_n) max_n = table.t[i].n;
    }
    unsigned gx = grid_for(max_n, kBlock);
    if (gx > 1024) gx = 1024;
    ema_kernel<T><<<dim3(gx, m), kBlock, 0, stream()>>>(table, T(decay), T(1.0 - decay));
    CUDA_CHECK_LAUNCH();
  }
}

KERNELS_EMA_INSTANTIATIONS

}  // namespace kernels::cuda
