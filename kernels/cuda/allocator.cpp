// Caching device allocator (after PyTorch's CUDACachingAllocator, much reduced): sizes are rounded up to
// 512 B, freed blocks go to a size-ordered free list and are handed out again for any request they fit
// within 2x (so a 1 MiB block never serves a 1 KiB tensor). On cudaMalloc failure the cache is released
// and the call retried once; a second failure says what was asked for and what is held.
#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <unordered_map>

#include "engine/error.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/runtime.h"

namespace kernels::cuda {
namespace {

constexpr std::size_t kRound = 512;

struct Allocator {
  std::mutex mu;
  std::multimap<std::size_t, void*> free_blocks;  // size -> block
  std::unordered_map<void*, std::size_t> live;    // block -> size
  AllocatorStats stats;

  void release_cache() {
    for (auto& [size, p] : free_blocks) {
      CUDA_CHECK(cudaFree(p));
      stats.reserved_bytes -= size;
      ++stats.cuda_free_calls;
    }
    free_blocks.clear();
  }
};

Allocator& allocator() {
  static Allocator* a = new Allocator;  // never destroyed: tensors may be freed during static destruction
  return *a;
}

std::string mib(std::size_t b) { return engine::cat(b / (1024 * 1024), " MiB"); }

}  // namespace

void* alloc(std::size_t bytes) {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  std::size_t size = (bytes + kRound - 1) / kRound * kRound;
  if (size == 0) size = kRound;
  void* p = nullptr;
  auto it = a.free_blocks.lower_bound(size);
  if (it != a.free_blocks.end() && it->first <= 2 * size) {
    size = it->first;
    p = it->second;
    a.free_blocks.erase(it);
  } else {
    cudaError_t err = cudaMalloc(&p, size);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // clear the sticky-free error state of the failed call
      a.release_cache();
      err = cudaMalloc(&p, size);
    }
    if (err != cudaSuccess) {
      cudaGetLastError();
      std::size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      engine::fail(engine::cat("CUDA out of memory: asked for ", mib(size), " (", size, " bytes); the engine holds ",
                               mib(a.stats.allocated_bytes), " in tensors, the device has ", mib(free_b), " free of ",
                               mib(total_b), " (", cudaGetErrorString(err),
                               "). Try a smaller --batch-size or a smaller --resize."));
    }
    ++a.stats.cuda_malloc_calls;
    a.stats.reserved_bytes += size;
  }
  a.live[p] = size;
  a.stats.allocated_bytes += size;
  if (a.stats.allocated_bytes > a.stats.peak_allocated_bytes) a.stats.peak_allocated_bytes = a.stats.allocated_bytes;
  return p;
}

void free(void* p) {
  if (!p) return;
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  auto it = a.live.find(p);
  if (it == a.live.end()) return;  // not ours: ignore rather than corrupt the lists
  a.stats.allocated_bytes -= it->second;
  a.free_blocks.emplace(it->second, p);
  a.live.erase(it);
}

AllocatorStats allocator_stats() {
  std::lock_guard<std::mutex> lock(allocator().mu);
  return allocator().stats;
}

void reset_peak_stats() {
  std::lock_guard<std::mutex> lock(allocator().mu);
  allocator().stats.peak_allocated_bytes = allocator().stats.allocated_bytes;
}

void empty_cache() {
  std::lock_guard<std::mutex> lock(allocator().mu);
  allocator().release_cache();
}

}  // namespace kernels::cuda
