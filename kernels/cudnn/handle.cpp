#include "kernels/cudnn/common.h"

namespace kernels::cudnn {

cudnnHandle_t handle() {
  // Created on first use, never destroyed (cuDNN teardown during static destruction can outlive the driver).
  static cudnnHandle_t h = [] {
    cudnnHandle_t created = nullptr;
    CUDNN_CHECK(cudnnCreate(&created));
    return created;
  }();
  CUDNN_CHECK(cudnnSetStream(h, kernels::cuda::stream()));
  return h;
}

}  // namespace kernels::cudnn
