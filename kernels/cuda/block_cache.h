// The caching allocator's bookkeeping (kernels/cuda/allocator.cpp), without the CUDA calls: which blocks are
// live, which are cached for reuse, the statistics, and the record of bad frees. Plain C++ with no locking of
// its own (the allocator holds its mutex around every call), so the host test suite can check it without a GPU.
//
// Sizes are rounded up to 512 B; a cached block serves any request it fits within 2x (so a 1 MiB block never
// serves a 1 KiB tensor). A free of a pointer that is not live is never applied to the lists: it would hand one
// block to two tensors. It is classified (freed twice, or never allocated here) and recorded instead, since the
// caller is usually a destructor that must not throw.
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
  void* reuse(std::size_t size, std::size_t* got) {
    auto it = free_blocks_.lower_bound(size);
    if (it == free_blocks_.end() || it->first > 2 * size) return nullptr;
    *got = it->first;
    void* p = it->second;
    free_blocks_.erase(it);
    cached_.erase(p);
    mark_live(p, *got);
    return p;
  }

  // A block just obtained from the driver: counted as reserved and marked live.
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
    stats_.allocated_bytes -= it->second;
    free_blocks_.emplace(it->second, p);
    cached_.insert(p);
    live_.erase(it);
    return Release::ok;
  }

  // Hands every cached block to give_back(p) (cudaFree) and forgets it; live blocks are kept.
  template <class F>
  void drain(F give_back) {
    for (auto it = free_blocks_.begin(); it != free_blocks_.end();) {
      give_back(it->second);
      stats_.reserved_bytes -= it->first;
      ++stats_.cuda_free_calls;
      cached_.erase(it->second);
      it = free_blocks_.erase(it);
    }
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
  void mark_live(void* p, std::size_t size) {
    live_[p] = size;
    stats_.allocated_bytes += size;
    if (stats_.allocated_bytes > stats_.peak_allocated_bytes) stats_.peak_allocated_bytes = stats_.allocated_bytes;
  }

  std::multimap<std::size_t, void*> free_blocks_;  // size -> cached block
  std::unordered_set<void*> cached_;               // the same blocks, by address (to recognise a second free)
  std::unordered_map<void*, std::size_t> live_;    // block -> size
  AllocatorStats stats_;
  std::string first_bad_;
};

}  // namespace kernels::cuda
