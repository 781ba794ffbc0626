// Multi-tensor SGD: the tensor table is passed by value in chunks of kMaxTensors; blockIdx.y picks the
// tensor and a grid-stride loop over x covers its elements. ResNet-50's 161 parameters take 3 launches.
#include "kernels/cuda/common.cuh"
#include "kernels/sgd.h"

namespace kernels::cuda {
namespace {
constexpr int kMaxTensors = 64;
constexpr int kBlock = 256;

struct Table {
  SgdTensor t[kMaxTensors];
};

template <class T>
__global__ void sgd_kernel(Table table, T lr, T mom, T wd, bool nesterov, bool first_step) {
  const SgdTensor& st = table.t[blockIdx.y];
  T* w = static_cast<T*>(st.w);
  const T* grad = static_cast<const T*>(st.g);
  T* buf = static_cast<T*>(st.buf);
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < st.n; i += (int64_t)blockDim.x * gridDim.x)
    sgd_step(w, grad, buf, i, lr, mom, wd, nesterov, first_step);
}
}  // namespace

template <class T>
void sgd_update(const SgdTensor* tensors, int count, const SgdParams& p) {
  for (int start = 0; start < count; start += kMaxTensors) {
    int m = count - start < kMaxTensors ? count - start : kMaxTensors;
    Table table{};
    int64_t max_n = 1;
    for (int i = 0; i < m; ++i) {
      table.t[i] = tensors[start + i];
      if (table.t[i].n > max_n) max_n = table.t[i].n;
    }
    unsigned gx = grid_for(max_n, kBlock);
    if (gx > 1024) gx = 1024;  // grid-stride covers the rest; keeps small tensors from idling many blocks
    dim3 grid(gx, m);
    sgd_kernel<T>
        <<<grid, kBlock, 0, stream()>>>(table, T(p.lr), T(p.momentum), T(p.weight_decay), p.nesterov, p.first_step);
    CUDA_CHECK_LAUNCH();
  }
}

KERNELS_SGD_INSTANTIATIONS

}  // namespace kernels::cuda
