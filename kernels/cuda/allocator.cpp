// Caching device allocator (after PyTorch's CUDACachingAllocator, much reduced): the bookkeeping is BlockCache
// (kernels/cuda/block_cache.h: sizes rounded to 512 B, reuse within 2x, bad frees recorded); this file adds the
// mutex and the driver calls. On cudaMalloc failure the cache is released and the call retried once (not during a
// graph capture); a second failure says what was asked for and what is held. The process uses one device
// (runtime.h, use_device), so one cache serves it.
#include <cuda_runtime.h>
#include <fmt/core.h>

#include <cstdio>
#include <mutex>

#include "kernels/check.h"
#include "kernels/cuda/block_cache.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/runtime.h"

namespace kernels::cuda {
namespace {

struct Allocator {
  std::mutex mu;
  BlockCache cache;
  std::size_t bad_frees_printed = 0;

  void release_cache() {
    cache.drain([](void* p) { CUDA_CHECK(cudaFree(p)); });
  }
};

Allocator& allocator() {
  static Allocator* a = new Allocator;  // never destroyed: tensors may be freed during static destruction
  return *a;
}

std::string mib(std::size_t b) { return kernels::cat(b / (1024 * 1024), " MiB"); }

}  // namespace

void* alloc(std::size_t bytes) {
  bind_thread();
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  std::size_t size = BlockCache::rounded(bytes);
  if (void* p = a.cache.reuse(size, &size)) return p;
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, size);
  // The retry frees the general cache, but cudaFree is not allowed while a graph is being captured (a private
  // pool is active only then): the capture then fails with the out-of-memory message and the step runs eagerly.
  if (err == cudaErrorMemoryAllocation && a.cache.active_pool() == 0) {
    cudaGetLastError();  // clear the sticky-free error state of the failed call
    a.release_cache();
    err = cudaMalloc(&p, size);
  }
  if (err != cudaSuccess) {
    cudaGetLastError();
    std::size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    kernels::fail(kernels::cat("CUDA out of memory: asked for ", mib(size), " (", size, " bytes); the engine holds ",
                               mib(a.cache.stats().allocated_bytes), " in tensors, the device has ", mib(free_b),
                               " free of ", mib(total_b), " (", cudaGetErrorString(err),
                               "). Try a smaller --batch-size or a smaller --resize."));
  }
  a.cache.add_new(p, size);
  return p;
}

// Called from destructors (Storage, DeviceBuffer), so it must not throw: a bad free goes to stderr now (the
// first few, so that a loop of them cannot flood the log) and into the record that check_allocator() raises.
void free(void* p) {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  const BlockCache::Release r = a.cache.release(p);
  if (r != BlockCache::Release::double_free && r != BlockCache::Release::unknown) return;
  if (a.bad_frees_printed < 10) {
    ++a.bad_frees_printed;
    fmt::print(stderr, "error: CUDA caching allocator: free of {}, which {}; ignored (check_allocator() reports it)\n",
               p, r == BlockCache::Release::double_free ? "was already freed" : "it never allocated");
  }
}

void check_allocator() {
  Allocator& a = allocator();
  std::size_t count = 0;
  std::string first;
  {
    std::lock_guard<std::mutex> lock(a.mu);
    first = a.cache.take_bad_frees(&count);
  }
  KERNELS_CHECK(count == 0, "CUDA caching allocator: ", count,
                " free(s) of pointers that were not live blocks; the first: ", first,
                ". They were ignored, so no block went to two tensors, but the caller has a bug: a buffer freed "
                "twice or a pointer that did not come from kernels::cuda::alloc");
}

AllocatorStats allocator_stats() {
  std::lock_guard<std::mutex> lock(allocator().mu);
  return allocator().cache.stats();
}

void reset_peak_stats() {
  std::lock_guard<std::mutex> lock(allocator().mu);
  allocator().cache.reset_peak();
}

int create_private_pool() {
  std::lock_guard<std::mutex> lock(allocator().mu);
  return allocator().cache.create_pool();
}

void empty_cache() {
  bind_thread();
  std::lock_guard<std::mutex> lock(allocator().mu);
  allocator().release_cache();
}

void set_allocation_pool(int pool) {
  std::lock_guard<std::mutex> lock(allocator().mu);
  allocator().cache.set_active_pool(pool);
}

void retire_private_pool(int pool) {
  std::lock_guard<std::mutex> lock(allocator().mu);
  allocator().cache.retire_pool(pool);
}

}  // namespace kernels::cuda
