// Multi-tensor EMA update (kernels/cuda/multi_tensor.cuh), laid out as the SGD kernel.
#include "kernels/cuda/multi_tensor.cuh"
#include "kernels/ema.h"

namespace kernels::cuda {
namespace {
template <class T>
__global__ void ema_kernel(TensorTable<EmaTensor> table, T keep, T take) {
  const EmaTensor& et = table.t[blockIdx.y];
  T* e = static_cast<T*>(et.ema);
  const T* w = static_cast<const T*>(et.w);
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < et.n; i += (int64_t)blockDim.x * gridDim.x)
    e[i] = ema_value(e[i], w[i], keep, take);
}
}  // namespace

template <class T>
void ema_update(const EmaTensor* tensors, int count, double decay) {
  for_each_tensor_chunk(tensors, count, [&](const TensorTable<EmaTensor>& table, dim3 grid) {
    ema_kernel<T><<<grid, kMultiTensorBlock, 0, stream()>>>(table, T(decay), T(1.0 - decay));
  });
}

KERNELS_EMA_INSTANTIATIONS

}  // namespace kernels::cuda
