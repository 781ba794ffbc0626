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

// One CUDA device per process. The first use binds the process to a device (cudaSetDevice): the stream, the
// caching allocator's blocks and the cuBLAS/cuDNN handles are all created on it afterwards, so nothing can mix
// devices. use_device(i) binds to cuda:i (or checks that cuda:i is the bound device, else a named kernels::Error,
// which is engine::EngineError) and makes it the calling thread's current device. Work that reaches the runtime without
// a device named (kernels called directly, as bench_kernels does) binds to cuda:0, the runtime's own default.
void use_device(int index);
int bound_device();  // -1 before the first use
// Makes the bound device (cuda:0 if none yet) current on the calling thread; cheap after the first call.
void bind_thread();
int current_device();  // cudaGetDevice of the calling thread

// Caching allocator: blocks are kept on free lists and reused, so a steady-state training step
// calls neither cudaMalloc nor cudaFree.
void* alloc(std::size_t bytes);
// Never throws (it runs in destructors): a pointer that is not a live block of this allocator (never allocated
// here, or freed twice) is left alone, reported on stderr and recorded; check_allocator() raises the record.
void free(void* p);
// Throws a kernels::Error (engine::EngineError) naming the first bad free since the last check (and how many
// there were); clears them.
void check_allocator();
struct AllocatorStats {
  std::size_t allocated_bytes = 0;       // handed out now
  std::size_t peak_allocated_bytes = 0;  // high-water mark of allocated_bytes
  std::size_t reserved_bytes = 0;        // held from the driver (allocated + cached)
  std::size_t cuda_malloc_calls = 0;
  std::size_t cuda_free_calls = 0;
  std::size_t bad_frees = 0;  // frees of pointers that were not live blocks, since the last check_allocator()
};
AllocatorStats allocator_stats();
void reset_peak_stats();
// Private pools for CUDA graphs (kernels/cuda/block_cache.h): a capture allocates from its own pool, whose blocks
// serve nobody else until retire_private_pool() after the graph is destroyed.
int create_private_pool();
// Gives the general cache's free blocks back to the driver (cudaFree); live blocks and private pools are kept.
void empty_cache();
void set_allocation_pool(int pool);  // 0: the general cache
void retire_private_pool(int pool);

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
