// Tensor: a contiguous, row-major view (shape + element offset) over a shared Storage on one device.
// Views (reshape, flatten) share storage; to()/clone() copy. Autograd state lives in the same impl.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/error.h"
#include "kernels/dtype.h"

namespace engine {

// f32 and f64 for math (f64 is what gradient checks use); i32 only for class labels; bf16 (bfloat16,
// kernels/bf16.h) for mixed precision: activations and the operands of convolutions and linear layers, computed
// in float (kernels/dtype.h). Parameters, optimizer state, the loss and batch-norm statistics stay float (the
// ops that only take those refuse bf16: dispatch_compute below).
enum class DType { f32, f64, i32, bf16 };
std::size_t dtype_size(DType d);
const char* dtype_name(DType d);

using Shape = std::vector<int64_t>;
int64_t numel_of(const Shape& s);
std::string shape_str(const Shape& s);

// Raw bytes on one device. CPU memory comes from engine/host_allocator.h, CUDA memory from the CUDA caching
// allocator; both cache freed blocks for reuse.
class Storage {
 public:
  Storage(std::size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  Device device() const { return device_; }
  // The version counter (as PyTorch's): every in-place write of this memory after the op that made it bumps it
  // (fill_, copy_, copy_from_host, the optimizer, the EMA, and so the initialisers and checkpoint loads that use
  // them). A copy derived from the storage (a parameter's bf16 copy, nn::param_for_input) records the version it
  // was made from; a different version means the copy is stale. A new writer of parameters must bump it too.
  uint64_t version() const { return version_; }
  void bump_version() { ++version_; }

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
  Device device_;
  uint64_t version_ = 0;
};

// Bytes of CPU tensor storage held now and the most held since the last reset (process-wide; the CUDA
// allocator keeps its own statistics). For memory tests and estimates (models/memory.h).
struct HostStorageStats {
  std::size_t live_bytes = 0, peak_bytes = 0;
};
HostStorageStats host_storage_stats();
void reset_host_storage_peak();  // peak = live

struct Node;  // autograd.h
struct TensorImpl;

class Tensor {
 public:
  Tensor() = default;  // undefined tensor
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- factories ----
  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32, Device device = Device::cpu());
  // Copies host values (given as double) into a new tensor of the dtype and device asked for.
  static Tensor from_vector(const std::vector<double>& values, const Shape& shape, DType dtype = DType::f32,
                            Device device = Device::cpu());

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const;
  DType dtype() const;
  Device device() const;
  bool is_cuda() const { return device().is_cuda(); }

  // Typed pointer to the first element; checks that T matches the dtype.
  template <class T>
  T* data() const;
  void* raw_data() const;

  // ---- copies and views ----
  Tensor to(Device device) const;            // copy across devices (same tensor if already there)
  Tensor to(DType dtype) const;              // convert dtype (same tensor if already that dtype)
  Tensor clone() const;                      // deep copy, no autograd history
  Tensor detach() const;                     // shares storage, no autograd history
  Tensor reshape(const Shape& shape) const;  // view; one dim may be -1; differentiable
  std::vector<double> to_vector() const;     // copies values to the host as doubles
  double item() const;                       // value of a one-element tensor
  void fill_(double value);                  // in place, no autograd; bumps the version
  void copy_(const Tensor& src);             // in place from same shape/dtype (any device), no autograd; bumps
  uint64_t version() const;                  // of the storage (Storage::version)
  void bump_version() const;                 // after writing the memory in place by other means (a kernel)

  // ---- autograd ----
  bool requires_grad() const;
  Tensor& set_requires_grad(bool r);
  Tensor grad() const;  // undefined until backward() reaches this leaf
  void set_grad(const Tensor& g);
  void zero_grad();  // drops the gradient (the next backward writes afresh)
  const std::shared_ptr<Node>& grad_fn() const;
  void set_grad_fn(std::shared_ptr<Node> fn);
  void backward() const;  // from a one-element tensor, seeds with 1

  std::shared_ptr<TensorImpl> impl() const { return impl_; }
  bool same(const Tensor& o) const { return impl_ == o.impl_; }
  std::string str() const;  // "f32[2, 3] on cpu"

 private:
  std::shared_ptr<TensorImpl> impl_;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  DType dtype = DType::f32;
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<Node> grad_fn;
  // Mixed precision: this float32 parameter's bf16 copy and the version of `storage` it equals. Made by
  // nn::param_for_input, refreshed by SGD in its update kernel; here, with the parameter's handle, because that
  // is what both the layer and the optimizer hold. detach() does not carry it over.
  std::shared_ptr<TensorImpl> bf16_copy;
  uint64_t bf16_copy_version = 0;
  // The copy is the channels-last [OC, KH, KW, C] form of this [OC, C, KH, KW] conv weight (a layer in NHWC asked
  // for it); SGD writes it permuted.
  bool bf16_copy_channels_last = false;
};

template <class T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::f32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::f64;
}
template <>
constexpr DType dtype_of<int32_t>() {
  return DType::i32;
}
template <>
constexpr DType dtype_of<kernels::bf16>() {
  return DType::bf16;
}

template <class T>
T* Tensor::data() const {
  ENGINE_CHECK(defined(), "data(): tensor is undefined");
  ENGINE_CHECK(dtype_of<T>() == dtype(), "data(): tensor is ", dtype_name(dtype()), ", asked for ",
               dtype_name(dtype_of<T>()));
  return static_cast<T*>(raw_data());
}

// The dtype the kernels compute in for storage dtype d (kernels/dtype.h's compute_t): d itself for f32 and f64,
// f32 for bf16. Batch-norm parameters and statistics and the loss live in it.
DType compute_dtype(DType d);

// The error for a tensor a compute-only op cannot take: "<op>: <what> must be float32 or float64, got int32", or
// for bf16 that this op computes in float and how to cast to it.
[[noreturn]] void fail_not_computable(const char* op, const char* what, DType d);

// For the ops that only take compute-typed tensors (loss, optimizer, weight average, data: kernels/dtype.h):
// calls f(T{}) with T = float or double; any other dtype (int32, bfloat16) is refused with the op's name.
template <class F>
decltype(auto) dispatch_compute(const char* op, DType d, F&& f) {
  if (d == DType::f32) return f(float{});
  if (d == DType::f64) return f(double{});
  fail_not_computable(op, "the input", d);
}

// For the activation ops (conv2d, linear, batch norm, pooling, relu, add, the shortcut) and for what only stores,
// converts or reads values (fill_, to(dtype), anomaly checks): calls f(T{}) with T = float, double or
// kernels::bf16; int32 is refused with `what` in the message.
template <class F>
decltype(auto) dispatch_storage(const char* what, DType d, F&& f) {
  if (d == DType::f32) return f(float{});
  if (d == DType::f64) return f(double{});
  if (d == DType::bf16) return f(kernels::bf16{});
  fail(cat(what, ": needs a float32, float64 or bfloat16 tensor, got ", dtype_name(d)));
}

}  // namespace engine
