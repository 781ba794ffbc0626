// Multi-tensor SGD (kernels/cuda/multi_tensor.cuh): one launch updates up to 64 parameters.
#include "kernels/check.h"
#include "kernels/cuda/multi_tensor.cuh"
#include "kernels/sgd.h"

namespace kernels::cuda {
namespace {
template <class T>
__global__ void sgd_kernel(TensorTable<SgdTensor> table, const T* lr_ptr, T mom, T wd, bool nesterov, bool first_step) {
  const SgdTensor& st = table.t[blockIdx.y];
  const T lr = *lr_ptr;  // read at run time: a graph replay sees the rate written since its capture
  T* w = static_cast<T*>(st.w);
  const T* grad = static_cast<const T*>(st.g);
  T* buf = static_cast<T*>(st.buf);
  bf16* low = st.w_bf16;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < st.n; i += (int64_t)blockDim.x * gridDim.x)
    sgd_step(w, grad, buf, low, i, low ? bf16_copy_index(i, st.bf16_c, st.bf16_kk) : i, lr, mom, wd, nesterov,
             first_step);
}
}  // namespace

template <class T>
void sgd_update(const SgdTensor* tensors, int count, const SgdParams& p) {
  KERNELS_CHECK(p.lr, "sgd_update: no learning rate (SgdParams::lr is null)");
  const T* lr = static_cast<const T*>(p.lr);
  for_each_tensor_chunk(tensors, count, [&](const TensorTable<SgdTensor>& table, dim3 grid) {
    sgd_kernel<T><<<grid, kMultiTensorBlock, 0, stream()>>>(table, lr, T(p.momentum), T(p.weight_decay), p.nesterov,
                                                            p.first_step);
  });
}

KERNELS_SGD_INSTANTIATIONS

}  // namespace kernels::cuda
