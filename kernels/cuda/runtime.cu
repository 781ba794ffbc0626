// CUDA runtime glue: device probing, error text, copies, the TF32 switch.
#include <cstdio>

#include "engine/error.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/runtime.h"

namespace kernels::cuda {

void throw_cuda_error(const char* expr, const char* file, int line, const std::string& msg) {
  engine::fail(engine::cat("CUDA error: ", msg, "\n  in ", expr, "\n  at ", file, ":", line));
}

std::string probe_device() {
  static const std::string reason = [] {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err == cudaErrorInsufficientDriver) {
      int drv = 0, rt = 0;
      cudaDriverGetVersion(&drv);
      cudaRuntimeGetVersion(&rt);
      if (drv == 0)  // no libcuda at all: a machine without an NVIDIA driver (or GPU)
        return std::string("no NVIDIA driver is installed, so no CUDA device can be used: use --device cpu");
      return engine::cat("the NVIDIA driver (CUDA ", drv / 1000, ".", (drv % 1000) / 10,
                         ") is older than this build's CUDA runtime (", rt / 1000, ".", (rt % 1000) / 10,
                         "): update the driver or use --device cpu");
    }
    if (err == cudaErrorNoDevice || (err == cudaSuccess && count == 0))
      return std::string("no CUDA device was found on this machine: use --device cpu");
    if (err != cudaSuccess)
      return engine::cat("the CUDA runtime could not start (", cudaGetErrorString(err), "): use --device cpu");
    return std::string();
  }();
  return reason;
}

int device_count() {
  if (!probe_device().empty()) return 0;
  int count = 0;
  CUDA_CHECK(cudaGetDeviceCount(&count));
  return count;
}

std::size_t free_device_memory() {
  std::size_t free_b = 0, total_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  return free_b;
}

void memcpy_h2d(void* dst, const void* src, std::size_t bytes) {
  CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}
void memcpy_d2h(void* dst, const void* src, std::size_t bytes) {
  CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}
void memcpy_d2d(void* dst, const void* src, std::size_t bytes) {
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()));
}
void memset_zero(void* dst, std::size_t bytes) { CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, stream())); }
void synchronize() { CUDA_CHECK(cudaDeviceSynchronize()); }

double time_on_stream_ms(const std::function<void()>& f) {
  cudaEvent_t start = nullptr, stop = nullptr;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  float ms = 0;
  try {
    CUDA_CHECK(cudaEventRecord(start, stream()));
    f();
    CUDA_CHECK(cudaEventRecord(stop, stream()));
    CUDA_CHECK(cudaEventSynchronize(stop));
    CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  } catch (...) {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    throw;
  }
  CUDA_CHECK(cudaEventDestroy(start));
  CUDA_CHECK(cudaEventDestroy(stop));
  return ms;
}

namespace {
bool g_allow_tf32 = false;
}
void set_allow_tf32(bool allow) { g_allow_tf32 = allow; }
bool allow_tf32() { return g_allow_tf32; }

}  // namespace kernels::cuda
