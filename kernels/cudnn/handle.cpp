#include "kernels/cuda/runtime.h"
#include "kernels/cudnn/common.h"

namespace kernels::cudnn {

cudnnHandle_t handle() {
  // Created on first use, on the process's one device (kernels/cuda/runtime.h, use_device), never destroyed
  // (cuDNN teardown during static destruction can outlive the driver).
  kernels::cuda::bind_thread();
  static cudnnHandle_t h = [] {
    cudnnHandle_t created = nullptr;
    CUDNN_CHECK(cudnnCreate(&created));
    return created;
  }();
  CUDNN_CHECK(cudnnSetStream(h, kernels::cuda::stream()));
  return h;
}

}  // namespace kernels::cudnn
