// CUDA runtime glue: device probing and binding, error text, copies, the TF32 switch.
#include <atomic>
#include <cstdio>
#include <mutex>

#include "kernels/check.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/runtime.h"

namespace kernels::cuda {

void throw_cuda_error(const char* expr, const char* file, int line, const std::string& msg) {
  kernels::fail(kernels::cat("CUDA error: ", msg, "\n  in ", expr, "\n  at ", file, ":", line));
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
      return kernels::cat("the NVIDIA driver (CUDA ", drv / 1000, ".", (drv % 1000) / 10,
                          ") is older than this build's CUDA runtime (", rt / 1000, ".", (rt % 1000) / 10,
                          "): update the driver or use --device cpu");
    }
    if (err == cudaErrorNoDevice || (err == cudaSuccess && count == 0))
      return std::string("no CUDA device was found on this machine: use --device cpu");
    if (err != cudaSuccess)
      return kernels::cat("the CUDA runtime could not start (", cudaGetErrorString(err), "): use --device cpu");
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
  bind_thread();  // the free memory of the bound device
  std::size_t free_b = 0, total_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  return free_b;
}

namespace {
std::mutex g_bind_mu;
std::atomic<int> g_bound{-1};
thread_local int t_current = -1;  // the device this thread has set current, -1 if none yet
}  // namespace

void use_device(int index) {
  if (t_current == index) return;  // set on this thread, so it is the bound device
  std::lock_guard<std::mutex> lock(g_bind_mu);
  const std::string why = probe_device();
  KERNELS_CHECK(why.empty(), "cuda:", index, " cannot be used: ", why);
  const int n = device_count();
  KERNELS_CHECK(index >= 0 && index < n, "cuda:", index, " does not exist: only ", n,
                " CUDA device(s) are present (cuda:0 .. cuda:", n - 1,
                "; CUDA_VISIBLE_DEVICES, if set, renumbers them)");
  const int bound = g_bound.load();
  KERNELS_CHECK(bound < 0 || index == bound, "cuda:", index,
                " was asked for, but this process already runs on cuda:", bound,
                ": the engine uses one CUDA device per process (its stream, memory cache and library handles live "
                "there). Keep every tensor on cuda:",
                bound, ", or run one process per GPU (--device cuda:N, or CUDA_VISIBLE_DEVICES=N).");
  CUDA_CHECK(cudaSetDevice(index));  // binds the process, or makes the bound device current on this thread
  g_bound.store(index);
  t_current = index;
}

int bound_device() { return g_bound.load(); }

void bind_thread() {
  if (t_current >= 0) return;
  const int bound = g_bound.load();
  use_device(bound >= 0 ? bound : 0);
}

int current_device() {
  int d = -1;
  CUDA_CHECK(cudaGetDevice(&d));
  return d;
}

cudaStream_t stream() {
  static const cudaStream_t s = [] {
    bind_thread();
    cudaStream_t created = nullptr;
    CUDA_CHECK(cudaStreamCreate(&created));  // blocking (cudaStreamDefault): see common.cuh
    return created;
  }();
  return s;
}

void memcpy_h2d(void* dst, const void* src, std::size_t bytes) {
  bind_thread();
  CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}
void memcpy_d2h(void* dst, const void* src, std::size_t bytes) {
  bind_thread();
  CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}
void memcpy_d2d(void* dst, const void* src, std::size_t bytes) {
  bind_thread();
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()));
}
void memset_zero(void* dst, std::size_t bytes) {
  bind_thread();
  CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, stream()));
}
void synchronize() {
  bind_thread();
  CUDA_CHECK(cudaDeviceSynchronize());
}

double time_on_stream_ms(const std::function<void()>& f) {
  bind_thread();
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
