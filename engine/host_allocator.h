// Caching allocator for CPU tensor storage, after the CUDA one (kernels/cuda/allocator.cpp). A training step
// frees and allocates the same activation and gradient sizes every step; handing back freed blocks instead of
// calling the system allocator avoids the mmap/munmap and the page faults of large fresh blocks.
//
// Sizes are rounded up to 512 B; a cached block serves any request it fits within 2x; blocks are 64-byte aligned.
// One mutex guards the lists (tensors are allocated and freed by the thread running the ops, never inside an
// OpenMP region, so it is never contended in a step). The cache is never given back on its own: host_empty_cache()
// does that. ENGINE_CPU_CACHE=0 in the environment (read once) or set_host_cache_enabled(false) turn caching off,
// e.g. for AddressSanitizer, which cannot see a use after free in a block the cache still holds.
#pragma once
#include <cstddef>

namespace engine {

struct HostAllocatorStats {
  std::size_t system_allocs = 0;    // blocks obtained from the system (cache misses, or every call when disabled)
  std::size_t system_frees = 0;     // blocks given back to the system
  std::size_t cache_hits = 0;       // requests served from the cache
  std::size_t allocated_bytes = 0;  // held by live blocks (rounded sizes; engine::host_storage_stats() counts the
                                    // bytes tensors asked for)
  std::size_t peak_allocated_bytes = 0;
  std::size_t reserved_bytes = 0;  // live + cached, i.e. what the process holds for tensors
  std::size_t cached_blocks = 0;
};

// 64-byte aligned, at least `bytes` (never null: throws a readable EngineError when the system has no memory,
// after giving the cache back and retrying once).
void* host_alloc(std::size_t bytes);
// A pointer from host_alloc (null is ignored). Never throws: called from destructors.
void host_free(void* p);

HostAllocatorStats host_allocator_stats();
void reset_host_allocator_peak();  // peak = allocated now
// Gives every cached (free) block back to the system; live blocks are kept.
void host_empty_cache();
// Caching on (the default unless ENGINE_CPU_CACHE=0) or off; turning it off also empties the cache. Blocks
// allocated while it was on are still recognised when freed.
void set_host_cache_enabled(bool on);
bool host_cache_enabled();

}  // namespace engine
