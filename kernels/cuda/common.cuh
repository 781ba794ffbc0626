// Shared by every CUDA kernel file: checked calls that keep the expression, file and line, the launch check,
// and the grid-size helper.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

namespace kernels::cuda {

[[noreturn]] void throw_cuda_error(const char* expr, const char* file, int line, const std::string& msg);

// The stream every engine kernel, copy and library call runs on: one created stream per process, on the bound
// device (runtime.h). Not the legacy default stream, because a CUDA graph cannot be captured there; a blocking
// stream, so that a legacy-stream call (a synchronous cudaMemcpy) still waits for it and it for the call.
cudaStream_t stream();

inline unsigned grid_for(int64_t n, int block) {
  int64_t g = (n + block - 1) / block;
  return static_cast<unsigned>(g < 65535 * 32 ? g : 65535 * 32);
}

}  // namespace kernels::cuda

#define CUDA_CHECK(expr)                                                                                             \
  do {                                                                                                               \
    cudaError_t err_ = (expr);                                                                                       \
    if (err_ != cudaSuccess) ::kernels::cuda::throw_cuda_error(#expr, __FILE__, __LINE__, cudaGetErrorString(err_)); \
  } while (0)

// After every launch: catches bad configurations at the call site, without a device sync.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

// Grid-stride loop over [0, n).
#define CUDA_KERNEL_LOOP(i, n) \
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)blockDim.x * gridDim.x)
