// ComputeBuffer<T>: n values accumulated in compute_t<T> and written out as T once. For float and double it is the
// output itself (accumulated in place, as before bf16 existed); for bf16 a float buffer, rounded to bf16 when
// stored, so a sum of many gradient terms (pooling backward, col2im) is rounded once, not once per term. A null
// output (a gradient nobody wants) gives a null buffer.
// Widened: bf16 inputs as floats (exact: every bf16 value is a float), null for a null input.
#pragma once
#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernels/dtype.h"

namespace kernels::cpu {

template <class T>
class ComputeBuffer {
 public:
  using C = compute_t<T>;
  ComputeBuffer(T* out, int64_t n) : out_(out), n_(n) {
    if (!out) {
      n_ = 0;
    } else if constexpr (std::is_same_v<T, C>) {
      data_ = out;
    } else {
      buf_.assign(n, C(0));
      data_ = buf_.data();
    }
  }
  C* data() { return data_; }
  void zero() {
    for (int64_t i = 0; i < n_; ++i) data_[i] = C(0);
  }
  void store() {
    if constexpr (!std::is_same_v<T, C>)
      for (int64_t i = 0; i < n_; ++i) out_[i] = to_storage<T>(data_[i]);
  }
  ComputeBuffer(const ComputeBuffer&) = delete;
  ComputeBuffer& operator=(const ComputeBuffer&) = delete;

 private:
  T* out_;
  int64_t n_;
  C* data_ = nullptr;
  std::vector<C> buf_;
};

class Widened {
 public:
  Widened(const bf16* x, int64_t n) : null_(x == nullptr) {
    if (null_) return;
    v_.resize(n);
    for (int64_t i = 0; i < n; ++i) v_[i] = bf16_to_float(x[i]);
  }
  const float* data() const { return null_ ? nullptr : v_.data(); }

 private:
  bool null_;
  std::vector<float> v_;
};

}  // namespace kernels::cpu
