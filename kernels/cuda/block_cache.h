// The caching allocator's bookkeeping (kernels/cuda/allocator.cpp), without the CUDA calls: which blocks are
// live, which are cached for reuse, the statistics, and the record of bad frees. Plain C++ with no locking of
// its own (the allocator holds its mutex around every call), so the host test suite can check it without a GPU.
//
// Sizes are rounded up to 512 B; a cached block serves any request it fits within 2x (so a 1 MiB block never
// serves a 1 KiB tensor). A free of a pointer that is not live is never applied to the lists: it would hand one
// block to two tensors. It is classified (freed twice, or never allocated here) and recorded instead, since the
// caller is usually a destructor that must not throw.
//
// Private pools (for CUDA graphs, after PyTorch's graph mempools): while a pool is active, requests are served
// from and new blocks belong to that pool, and a block keeps its pool when freed, whoever frees it and when. A
// captured graph replays into the addresses it was captured with, including blocks its step freed on the host, so
// a pool's blocks must not serve anyone else while its graph lives; retire_pool() hands them to the general cache
// (pool 0) when the graph is gone. drain() (the out-of-memory retry) gives back general blocks only.
#pragma once
#include <fmt/core.h>

#include <cstddef>
#include <map>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "kernels/cuda/runtime.h"

namespace kernels::cuda {

class BlockCache {
 public:
  static constexpr std::size_t kRound = 512;
  static std::size_t rounded(std::size_t bytes) {
    const std::size_t size = (bytes + kRound - 1) / kRound * kRound;
    return size == 0 ? kRound : size;
  }

  // A cached block for a request of `size` (already rounded): marked live and returned, its real size in *got;
  // nullptr when none fits.
  // Only blocks of the active pool are considered.
  void* reuse(std::size_t size, std::size_t* got) {
    auto& list = free_blocks_[active_];
    auto it = list.lower_bound(size);
    if (it == list.end() || it->first > 2 * size) return nullptr;
    *got = it->first;
    void* p = it->second;
    list.erase(it);
    cached_.erase(p);
    mark_live(p, *got);
    return p;
  }

  // A block just obtained from the driver: counted as reserved, marked live, owned by the active pool.
  void add_new(void* p, std::size_t size) {
    ++stats_.cuda_malloc_calls;
    stats_.reserved_bytes += size;
    mark_live(p, size);
  }

  enum class Release { ok, ignored_null, double_free, unknown };

  // Returns a live block to the cache. Anything else changes no list: a null pointer is a no-op, a cached
  // block (freed twice) or a pointer never handed out is counted and the first one described.
  Release release(void* p) {
    if (!p) return Release::ignored_null;
    auto it = live_.find(p);
    if (it == live_.end()) {
      const bool twice = cached_.count(p) > 0;
      ++stats_.bad_frees;
      if (first_bad_.empty()) {
        first_bad_ = fmt::format("{} {}", p,
                                 twice ? "was freed twice (it is already in the cache)"
                                       : "was never allocated by this allocator (or not at a block start)");
      }
      return twice ? Release::double_free : Release::unknown;
    }
    stats_.allocated_bytes -= it->second.size;
    free_blocks_[it->second.pool].emplace(it->second.size, p);
    cached_.insert(p);
    live_.erase(it);
    return Release::ok;
  }

  // Hands every cached block of the general cache to give_back(p) (cudaFree) and forgets it; live blocks and
  // the private pools' blocks are kept.
  template <class F>
  void drain(F give_back) {
    auto& list = free_blocks_[0];
    for (auto it = list.begin(); it != list.end();) {
      give_back(it->second);
      stats_.reserved_bytes -= it->first;
      ++stats_.cuda_free_calls;
      cached_.erase(it->second);
      it = list.erase(it);
    }
  }

  // A new private pool's id (never 0, never reused).
  int create_pool() { return next_pool_++; }
  // Makes `pool` (0: the general cache) the one that serves requests and owns new blocks.
  void set_active_pool(int pool) { active_ = pool; }
  int active_pool() const { return active_; }
  // Moves every block of `pool`, live or cached, to the general cache; the pool is not used again.
  void retire_pool(int pool) {
    if (pool == 0) return;
    if (active_ == pool) active_ = 0;
    auto found = free_blocks_.find(pool);
    if (found != free_blocks_.end()) {
      free_blocks_[0].insert(found->second.begin(), found->second.end());
      free_blocks_.erase(pool);
    }
    for (auto& [p, block] : live_)
      if (block.pool == pool) block.pool = 0;
  }
  // Bytes of `pool`'s cached (free) blocks, for tests and statistics.
  std::size_t cached_bytes(int pool) const {
    auto found = free_blocks_.find(pool);
    std::size_t b = 0;
    if (found != free_blocks_.end())
      for (const auto& [size, p] : found->second) b += size;
    return b;
  }

  // The first bad free since the last call ("" if none) and how many there were; clears the record.
  std::string take_bad_frees(std::size_t* count) {
    *count = stats_.bad_frees;
    stats_.bad_frees = 0;
    std::string first;
    first.swap(first_bad_);
    return first;
  }

  const AllocatorStats& stats() const { return stats_; }
  void reset_peak() { stats_.peak_allocated_bytes = stats_.allocated_bytes; }

 private:
  struct LiveBlock {
    std::size_t size = 0;
    int pool = 0;
  };

  void mark_live(void* p, std::size_t size) {
    live_[p] = LiveBlock{size, active_};
    stats_.allocated_bytes += size;
    if (stats_.allocated_bytes > stats_.peak_allocated_bytes) stats_.peak_allocated_bytes = stats_.allocated_bytes;
  }

  std::map<int, std::multimap<std::size_t, void*>> free_blocks_;  // pool -> size -> cached block
  std::unordered_set<void*> cached_;           // the same blocks, by address (to recognise a second free)
  std::unordered_map<void*, LiveBlock> live_;  // block -> size and pool
  int active_ = 0, next_pool_ = 1;
  AllocatorStats stats_;
  std::string first_bad_;
};

}  // namespace kernels::cuda
