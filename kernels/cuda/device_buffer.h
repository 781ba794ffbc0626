// Scratch memory for one kernel call, from the caching allocator, released when the scope ends. Freed blocks
// are reused only by later work on the same stream, so returning them while kernels are queued is safe.
#pragma once
#include <cstddef>

#include "kernels/cuda/runtime.h"

namespace kernels::cuda {

template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t count) { reset(count); }
  ~DeviceBuffer() { kernels::cuda::free(p_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  // Holds at least `count` elements afterwards (contents not kept when it grows).
  void reset(std::size_t count) {
    if (count <= count_ && p_) return;
    kernels::cuda::free(p_);
    p_ = nullptr;
    count_ = 0;
    p_ = static_cast<T*>(kernels::cuda::alloc(count * sizeof(T)));
    count_ = count;
  }
  T* get() const { return p_; }
  std::size_t size() const { return count_; }

 private:
  T* p_ = nullptr;
  std::size_t count_ = 0;
};

}  // namespace kernels::cuda
