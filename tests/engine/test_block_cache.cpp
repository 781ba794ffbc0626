// The CUDA caching allocator's bookkeeping (kernels/cuda/block_cache.h), tested on the host: it never touches
// the memory, so made-up addresses stand in for device blocks. Reuse within 2x, statistics, and a free of a
// pointer that is not live (freed twice, or never handed out) recorded and kept off the lists.
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cuda/block_cache.h"

using kernels::cuda::BlockCache;

namespace {
void* addr(std::uintptr_t a) { return reinterpret_cast<void*>(a); }
}  // namespace

TEST_CASE("block cache: sizes round to 512 B and cached blocks serve requests within 2x", "[allocator]") {
  REQUIRE(BlockCache::rounded(0) == 512);
  REQUIRE(BlockCache::rounded(1) == 512);
  REQUIRE(BlockCache::rounded(512) == 512);
  REQUIRE(BlockCache::rounded(513) == 1024);
  BlockCache c;
  std::size_t got = 0;
  REQUIRE(c.reuse(4096, &got) == nullptr);  // empty cache
  c.add_new(addr(0x10000), 4096);
  REQUIRE(c.stats().allocated_bytes == 4096);
  REQUIRE(c.stats().reserved_bytes == 4096);
  REQUIRE(c.stats().cuda_malloc_calls == 1);
  REQUIRE(c.release(addr(0x10000)) == BlockCache::Release::ok);
  REQUIRE(c.stats().allocated_bytes == 0);
  REQUIRE(c.stats().reserved_bytes == 4096);
  REQUIRE(c.reuse(1536, &got) == nullptr);  // 4096 > 2 x 1536: not handed to a much smaller request
  REQUIRE(c.reuse(2048, &got) == addr(0x10000));
  REQUIRE(got == 4096);
  REQUIRE(c.stats().allocated_bytes == 4096);
  REQUIRE(c.stats().peak_allocated_bytes == 4096);
  REQUIRE(c.reuse(2048, &got) == nullptr);  // it is live now, not cached twice
}

TEST_CASE("block cache: a double free and a foreign pointer are recorded and change no list", "[allocator]") {
  BlockCache c;
  c.add_new(addr(0x20000), 1024);
  c.add_new(addr(0x30000), 1024);
  REQUIRE(c.release(nullptr) == BlockCache::Release::ignored_null);
  REQUIRE(c.release(addr(0x20000)) == BlockCache::Release::ok);
  REQUIRE(c.release(addr(0x20000)) == BlockCache::Release::double_free);
  REQUIRE(c.release(addr(0x30000 + 64)) == BlockCache::Release::unknown);  // inside a live block, not its start
  REQUIRE(c.release(addr(0x99000)) == BlockCache::Release::unknown);
  REQUIRE(c.stats().bad_frees == 3);
  REQUIRE(c.stats().allocated_bytes == 1024);  // 0x30000 still live, counted once
  // The block freed twice is cached once: two requests do not both get it.
  std::size_t got = 0;
  REQUIRE(c.reuse(1024, &got) == addr(0x20000));
  REQUIRE(c.reuse(1024, &got) == nullptr);
  std::size_t count = 0;
  const std::string first = c.take_bad_frees(&count);
  REQUIRE(count == 3);
  REQUIRE_THAT(first, Catch::Contains("was freed twice"));
  REQUIRE(c.take_bad_frees(&count).empty());  // cleared
  REQUIRE(count == 0);
  REQUIRE(c.stats().bad_frees == 0);
  REQUIRE(c.release(addr(0x99000)) == BlockCache::Release::unknown);
  REQUIRE_THAT(c.take_bad_frees(&count), Catch::Contains("was never allocated by this allocator"));
}

TEST_CASE("block cache: drain gives back cached blocks only", "[allocator]") {
  BlockCache c;
  c.add_new(addr(0x1000), 512);
  c.add_new(addr(0x2000), 2048);
  c.add_new(addr(0x3000), 4096);
  REQUIRE(c.release(addr(0x1000)) == BlockCache::Release::ok);
  REQUIRE(c.release(addr(0x3000)) == BlockCache::Release::ok);
  std::vector<void*> given;
  c.drain([&](void* p) { given.push_back(p); });
  REQUIRE(given.size() == 2);
  REQUIRE(c.stats().reserved_bytes == 2048);
  REQUIRE(c.stats().cuda_free_calls == 2);
  std::size_t got = 0;
  REQUIRE(c.reuse(512, &got) == nullptr);
  // A drained block is no longer ours: freeing it again is a bad free, not a silent re-insert.
  REQUIRE(c.release(addr(0x1000)) == BlockCache::Release::unknown);
  c.reset_peak();
  REQUIRE(c.stats().peak_allocated_bytes == 2048);
}

TEST_CASE("block cache: a private pool's blocks serve only that pool until it is retired", "[allocator][graphs]") {
  BlockCache c;
  std::size_t got = 0;
  c.add_new(addr(0x1000), 4096);  // general
  REQUIRE(c.release(addr(0x1000)) == BlockCache::Release::ok);
  const int pool = c.create_pool();
  REQUIRE(pool != 0);
  REQUIRE(c.create_pool() != pool);  // ids are not reused
  c.set_active_pool(pool);
  REQUIRE(c.reuse(4096, &got) == nullptr);  // the general block does not serve the pool (nor the reverse)
  c.add_new(addr(0x2000), 4096);            // the capture's own block
  REQUIRE(c.release(addr(0x2000)) == BlockCache::Release::ok);
  REQUIRE(c.reuse(4096, &got) == addr(0x2000));  // freed during capture, reused within it
  c.add_new(addr(0x3000), 1024);
  c.set_active_pool(0);
  // Freed after the capture (a graph's intermediate, or a gradient dropped by an eager step): back to its pool,
  // where no general request can take it while the graph may still replay into it.
  REQUIRE(c.release(addr(0x2000)) == BlockCache::Release::ok);
  REQUIRE(c.cached_bytes(pool) == 4096);
  REQUIRE(c.reuse(4096, &got) == addr(0x1000));
  REQUIRE(c.reuse(4096, &got) == nullptr);
  std::vector<void*> given;
  c.drain([&](void* p) { given.push_back(p); });  // the out-of-memory retry keeps the pool's blocks
  REQUIRE(given.empty());
  REQUIRE(c.stats().allocated_bytes == 4096 + 1024);
  // Retired: its cached block serves general requests and its live block is freed into the general cache.
  c.retire_pool(pool);
  REQUIRE(c.cached_bytes(pool) == 0);
  REQUIRE(c.reuse(4096, &got) == addr(0x2000));
  REQUIRE(c.release(addr(0x3000)) == BlockCache::Release::ok);
  REQUIRE(c.cached_bytes(0) == 1024);
  REQUIRE(c.stats().allocated_bytes == 2 * 4096);
  REQUIRE(c.stats().bad_frees == 0);
}
