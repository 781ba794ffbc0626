// CPU caching allocator (engine/host_allocator.h): a best-fit free list by rounded size, a map of live blocks,
// one mutex, and the statistics the allocation test (tests/engine/test_host_allocator.cpp) reads.
#include "engine/host_allocator.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>

#include "engine/error.h"

namespace engine {
namespace {

constexpr std::size_t kRound = 512;  // a multiple of the 64-byte alignment aligned_alloc needs

std::size_t rounded(std::size_t bytes) {
  const std::size_t size = (bytes + kRound - 1) / kRound * kRound;
  return size == 0 ? kRound : size;
}

bool enabled_by_environment() {
  const char* v = std::getenv("ENGINE_CPU_CACHE");
  return !(v && std::strcmp(v, "0") == 0);
}

struct HostAllocator {
  std::mutex mu;
  bool enabled = enabled_by_environment();
  std::multimap<std::size_t, void*> free_blocks;  // size -> cached block
  std::unordered_map<void*, std::size_t> live;    // block -> rounded size
  HostAllocatorStats stats;
  std::size_t bad_frees_printed = 0;

  void drain() {
    for (auto& [size, p] : free_blocks) {
      std::free(p);
      stats.reserved_bytes -= size;
      ++stats.system_frees;
    }
    free_blocks.clear();
    stats.cached_blocks = 0;
  }

  void mark_live(void* p, std::size_t size) {
    live.emplace(p, size);
    stats.allocated_bytes += size;
    if (stats.allocated_bytes > stats.peak_allocated_bytes) stats.peak_allocated_bytes = stats.allocated_bytes;
  }
};

HostAllocator& allocator() {
  static HostAllocator* a = new HostAllocator;  // never destroyed: tensors may be freed during static destruction
  return *a;
}

}  // namespace

void* host_alloc(std::size_t bytes) {
  HostAllocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  const std::size_t size = rounded(bytes);
  if (a.enabled) {
    auto it = a.free_blocks.lower_bound(size);
    if (it != a.free_blocks.end() && it->first <= 2 * size) {
      const std::size_t got = it->first;
      void* p = it->second;
      a.free_blocks.erase(it);
      --a.stats.cached_blocks;
      ++a.stats.cache_hits;
      a.mark_live(p, got);
      return p;
    }
  }
  void* p = std::aligned_alloc(64, size);
  if (!p && !a.free_blocks.empty()) {
    a.drain();
    p = std::aligned_alloc(64, size);
  }
  ENGINE_CHECK(p, "out of host memory allocating a tensor of ", bytes, " bytes (the engine holds ",
               a.stats.allocated_bytes / (1024 * 1024), " MiB in CPU tensors); try a smaller --batch-size or --resize");
  ++a.stats.system_allocs;
  a.stats.reserved_bytes += size;
  a.mark_live(p, size);
  return p;
}

void host_free(void* p) {
  if (!p) return;
  HostAllocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  auto it = a.live.find(p);
  if (it == a.live.end()) {
    // Freeing it anyway could hand one block to two tensors later; ignoring it only leaks.
    if (a.bad_frees_printed < 10) {
      ++a.bad_frees_printed;
      std::fprintf(stderr, "error: CPU caching allocator: free of %p, which is not a live block; ignored\n", p);
    }
    return;
  }
  const std::size_t size = it->second;
  a.live.erase(it);
  a.stats.allocated_bytes -= size;
  if (a.enabled) {
    a.free_blocks.emplace(size, p);
    ++a.stats.cached_blocks;
  } else {
    std::free(p);
    a.stats.reserved_bytes -= size;
    ++a.stats.system_frees;
  }
}

HostAllocatorStats host_allocator_stats() {
  HostAllocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  return a.stats;
}

void reset_host_allocator_peak() {
  HostAllocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  a.stats.peak_allocated_bytes = a.stats.allocated_bytes;
}

void host_empty_cache() {
  HostAllocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  a.drain();
}

void set_host_cache_enabled(bool on) {
  HostAllocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  a.enabled = on;
  if (!on) a.drain();
}

bool host_cache_enabled() {
  HostAllocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  return a.enabled;
}

}  // namespace engine
