// Host-side interface to the CUDA runtime, usable from plain C++ (no CUDA headers). Implemented in
// kernels/cuda/runtime.cu and allocator.cpp; only linked when the engine is built with CUDA.
#pragma once
#include <cstddef>
#include <functional>
#include <string>

namespace kernels::cuda {

// Probes the driver once; never throws. Empty string when a device is usable, else the reason.
std::string probe_device();
int device_count();
// Free bytes on the current device (cudaMemGetInfo), for the memory check before a run; excludes the engine
// allocator's cached blocks.
std::size_t free_device_memory();

// Caching allocator: blocks are kept on free lists and reused, so a steady-state training step
// calls neither cudaMalloc nor cudaFree.
void* alloc(std::size_t bytes);
void free(void* p);
struct AllocatorStats {
  std::size_t allocated_bytes = 0;       // handed out now
  std::size_t peak_allocated_bytes = 0;  // high-water mark of allocated_bytes
  std::size_t reserved_bytes = 0;        // held from the driver (allocated + cached)
  std::size_t cuda_malloc_calls = 0;
  std::size_t cuda_free_calls = 0;
};
AllocatorStats allocator_stats();
void reset_peak_stats();
void empty_cache();  // returns cached blocks to the driver

void memcpy_h2d(void* dst, const void* src, std::size_t bytes);
void memcpy_d2h(void* dst, const void* src, std::size_t bytes);
void memcpy_d2d(void* dst, const void* src, std::size_t bytes);
void memset_zero(void* dst, std::size_t bytes);
void synchronize();

// Milliseconds the GPU spends on the work `f` queues on the engine's stream: a pair of events around it, then a
// wait for the second. For one-off measurements (the conv engine's per-shape choice), not for hot paths.
double time_on_stream_ms(const std::function<void()>& f);

// TF32 tensor-core GEMMs for float32 (off by default; gradient checks keep it off).
void set_allow_tf32(bool allow);
bool allow_tf32();

}  // namespace kernels::cuda
