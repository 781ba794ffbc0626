#include "engine/tensor.h"

#include <fmt/format.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "engine/autograd.h"
#include "engine/host_allocator.h"
#include "engine/ops/common.h"
#include "kernels/dtype.h"
#include "kernels/elementwise.h"
#if ENGINE_HAVE_CUDA
#include "kernels/cuda/runtime.h"
#endif

namespace engine {

std::size_t dtype_size(DType d) {
  switch (d) {
    case DType::f32:
    case DType::i32:
      return 4;
    case DType::f64:
      return 8;
    case DType::bf16:
      return 2;
  }
  fail(cat("dtype_size: unknown dtype ", static_cast<int>(d)));
}
const char* dtype_name(DType d) {
  switch (d) {
    case DType::f32:
      return "float32";
    case DType::f64:
      return "float64";
    case DType::i32:
      return "int32";
    case DType::bf16:
      return "bfloat16";
  }
  return "?";
}

DType compute_dtype(DType d) {
  return dispatch_storage("compute_dtype", d, [](auto tag) { return dtype_of<kernels::compute_t<decltype(tag)>>(); });
}

void fail_not_computable(const char* op, const char* what, DType d) {
  if (d == DType::bf16)
    fail(cat(op, ": ", what,
             " is bfloat16, but this op computes in float32 or float64 only (mixed precision keeps the loss, "
             "parameters and optimizer state in float32): cast it first with engine::cast(t, DType::f32)"));
  fail(cat(op, ": ", what, " must be float32 or float64, got ", dtype_name(d)));
}

int64_t numel_of(const Shape& s) {
  for (int64_t v : s) ENGINE_CHECK(v >= 0, "negative dimension in shape ", shape_str(s));
  // A zero anywhere makes the product 0, even where the other dimensions alone would overflow.
  for (int64_t v : s)
    if (v == 0) return 0;
  int64_t n = 1;
  for (int64_t v : s)
    ENGINE_CHECK(!__builtin_mul_overflow(n, v, &n), "shape ", shape_str(s),
                 " has more elements than a 64-bit count can hold (2^63 - 1)");
  return n;
}

std::string shape_str(const Shape& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

// ---------------- Storage ----------------
namespace {
std::atomic<std::size_t> g_host_live{0}, g_host_peak{0};

void host_allocated(std::size_t bytes) {
  const std::size_t now = g_host_live.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  std::size_t peak = g_host_peak.load(std::memory_order_relaxed);
  while (now > peak && !g_host_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}
}  // namespace

HostStorageStats host_storage_stats() {
  return {g_host_live.load(std::memory_order_relaxed), g_host_peak.load(std::memory_order_relaxed)};
}

void reset_host_storage_peak() { g_host_peak.store(g_host_live.load(std::memory_order_relaxed)); }

Storage::Storage(std::size_t bytes, Device device) : bytes_(bytes), device_(device) {
  if (device.is_cpu()) {
    // 64-byte aligned for vector loads, never null (engine/host_allocator.h); the counters count the bytes
    // asked for, not the cache's rounded or cached blocks.
    data_ = host_alloc(bytes);
    host_allocated(bytes_);
  } else {
    require_cuda("allocating a tensor on " + device.str());
    use_device(device);  // binds the process to this GPU, or refuses a second one
    ENGINE_CUDA_ONLY("Storage", data_ = kernels::cuda::alloc(bytes));
  }
}

Storage::~Storage() {
  if (device_.is_cpu()) {
    host_free(data_);
    g_host_live.fetch_sub(bytes_, std::memory_order_relaxed);
  } else {
#if ENGINE_HAVE_CUDA
    kernels::cuda::free(data_);
#endif
  }
}

// ---------------- Tensor basics ----------------
namespace {
const TensorImpl& impl_of(const std::shared_ptr<TensorImpl>& p) {
  ENGINE_CHECK(p, "operation on an undefined tensor");
  return *p;
}
}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t v : shape) ENGINE_CHECK(v >= 0, "negative dimension in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(numel_of(shape) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->dtype = dtype;
  return Tensor(impl);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}

Tensor Tensor::from_vector(const std::vector<double>& values, const Shape& shape, DType dtype, Device device) {
  ENGINE_CHECK(static_cast<int64_t>(values.size()) == numel_of(shape), "from_vector: ", values.size(),
               " values do not fill shape ", shape_str(shape));
  if (dtype == DType::i32) {  // labels: converted on the host, no int kernels on devices
    Tensor host = empty(shape, DType::i32, Device::cpu());
    int32_t* p = host.data<int32_t>();
    for (size_t i = 0; i < values.size(); ++i) p[i] = static_cast<int32_t>(values[i]);
    return host.to(device);
  }
  Tensor host = empty(shape, DType::f64, Device::cpu());
  std::memcpy(host.raw_data(), values.data(), values.size() * sizeof(double));
  DetectAnomalyGuard a_factory_not_an_op(false);  // NaN or Inf asked for is not an anomaly
  return host.to(dtype).to(device);
}

const Shape& Tensor::shape() const { return impl_of(impl_).shape; }
int64_t Tensor::numel() const { return numel_of(shape()); }
DType Tensor::dtype() const { return impl_of(impl_).dtype; }
Device Tensor::device() const { return impl_of(impl_).storage->device(); }

int64_t Tensor::size(int64_t d) const {
  int64_t n = dim();
  int64_t i = d < 0 ? d + n : d;
  ENGINE_CHECK(i >= 0 && i < n, "size(", d, "): tensor of shape ", shape_str(shape()), " has ", n, " dimensions");
  return shape()[i];
}

void* Tensor::raw_data() const {
  const TensorImpl& t = impl_of(impl_);
  return static_cast<char*>(t.storage->data()) + t.offset * dtype_size(t.dtype);
}

uint64_t Tensor::version() const { return impl_of(impl_).storage->version(); }
void Tensor::bump_version() const { impl_of(impl_).storage->bump_version(); }

std::string Tensor::str() const {
  if (!defined()) return "undefined tensor";
  return cat(dtype_name(dtype()), shape_str(shape()), " on ", device().str());
}

// ---------------- copies ----------------
void Tensor::fill_(double value) {
  int64_t n = numel();
  dispatch_storage("fill_", dtype(), [&](auto tag) {
    using T = decltype(tag);
    ENGINE_KERNEL("fill_", *this, fill<T>, data<T>(), kernels::convert_value<T>(value), n);
  });
  bump_version();
}

void Tensor::copy_(const Tensor& src) {
  ENGINE_CHECK(src.shape() == shape() && src.dtype() == dtype(), "copy_: source ", src.str(),
               " does not match destination ", str());
  std::size_t bytes = numel() * dtype_size(dtype());
  if (bytes == 0) return;
  bump_version();
  if (!is_cuda() && !src.is_cuda()) {
    std::memcpy(raw_data(), src.raw_data(), bytes);
    return;
  }
#if ENGINE_HAVE_CUDA
  if (is_cuda() && src.is_cuda())
    kernels::cuda::memcpy_d2d(raw_data(), src.raw_data(), bytes);
  else if (is_cuda())
    kernels::cuda::memcpy_h2d(raw_data(), src.raw_data(), bytes);
  else
    kernels::cuda::memcpy_d2h(raw_data(), src.raw_data(), bytes);
#else
  fail_no_cuda("copy_");
#endif
}

Tensor Tensor::to(Device device) const {
  if (device == this->device()) return *this;
  Tensor out = empty(shape(), dtype(), device);
  out.copy_(*this);
  Tensor self = *this;
  record(out, "to_device", {self},
         [src = this->device()](const Tensor& g, const std::vector<bool>&) { return std::vector<Tensor>{g.to(src)}; });
  return out;
}

Tensor Tensor::to(DType dt) const {
  if (dt == dtype()) return *this;
  if (dtype() == DType::i32 && !is_cuda()) {  // host-only integer -> float, for to_vector() of labels
    Tensor out = empty(shape(), dt, device());
    dispatch_storage("to()", dt, [&](auto tag) {
      using D = decltype(tag);
      const int32_t* src = data<int32_t>();
      D* dst = out.data<D>();
      // Through double, which holds every int32: rounded once, to nearest even, whatever D is.
      for (int64_t i = 0; i < numel(); ++i) dst[i] = kernels::convert_value<D>(static_cast<double>(src[i]));
    });
    return out;
  }
  ENGINE_CHECK(dt != DType::i32 && dtype() != DType::i32, "to(): conversion ", dtype_name(dtype()), " -> ",
               dtype_name(dt), " on ", device().str(), " is not supported");
  Tensor out = empty(shape(), dt, device());
  int64_t n = numel();
  dispatch_storage("to()", dtype(), [&](auto src_tag) {
    dispatch_storage("to()", dt, [&](auto dst_tag) {
      using S = decltype(src_tag);
      using D = decltype(dst_tag);
      // S == D returned above; elementwise.h instantiates convert for every pair of different storage types.
      if constexpr (!std::is_same_v<S, D>)
        ENGINE_KERNEL("to(dtype)", *this, convert, data<S>(), out.data<D>(), n);  // S and D deduced
    });
  });
  Tensor self = *this;
  record(out, "to_dtype", {self},
         [src = dtype()](const Tensor& g, const std::vector<bool>&) { return std::vector<Tensor>{g.to(src)}; });
  return out;
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype(), device());
  out.copy_(*this);
  return out;
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>(impl_of(impl_));
  impl->requires_grad = false;
  impl->grad = nullptr;
  impl->grad_fn = nullptr;
  impl->bf16_copy = nullptr;
  return Tensor(impl);
}

Tensor Tensor::reshape(const Shape& new_shape) const {
  Shape s = new_shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      ENGINE_CHECK(infer < 0, "reshape: more than one -1 in ", shape_str(new_shape));
      infer = static_cast<int64_t>(i);
    } else {
      ENGINE_CHECK(s[i] >= 0, "reshape: bad dimension in ", shape_str(new_shape));
      known *= s[i];
    }
  }
  if (infer >= 0) {
    ENGINE_CHECK(known > 0 && numel() % known == 0, "reshape: cannot view ", shape_str(shape()), " as ",
                 shape_str(new_shape));
    s[infer] = numel() / known;
  }
  ENGINE_CHECK(numel_of(s) == numel(), "reshape: cannot view ", shape_str(shape()), " (", numel(), " elements) as ",
               shape_str(new_shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_of(impl_).storage;
  impl->offset = impl_->offset;
  impl->shape = s;
  impl->dtype = dtype();
  Tensor out(impl);
  Tensor self = *this;
  record(out, "reshape", {self},
         [old = shape()](const Tensor& g, const std::vector<bool>&) { return std::vector<Tensor>{g.reshape(old)}; });
  return out;
}

std::vector<double> Tensor::to_vector() const {
  DetectAnomalyGuard a_read_not_an_op(false);  // reading values (e.g. to check them) is not an anomaly
  Tensor host = detach().to(Device::cpu()).to(DType::f64);
  const double* p = host.data<double>();
  return std::vector<double>(p, p + host.numel());
}

double Tensor::item() const {
  ENGINE_CHECK(numel() == 1, "item(): tensor of shape ", shape_str(shape()), " has ", numel(), " elements, not 1");
  return to_vector()[0];
}

// ---------------- autograd accessors ----------------
bool Tensor::requires_grad() const { return impl_of(impl_).requires_grad; }
Tensor& Tensor::set_requires_grad(bool r) {
  impl_of(impl_);
  impl_->requires_grad = r;
  return *this;
}
Tensor Tensor::grad() const { return Tensor(impl_of(impl_).grad); }
void Tensor::set_grad(const Tensor& g) {
  impl_of(impl_);
  impl_->grad = g.impl();
}
void Tensor::zero_grad() {
  impl_of(impl_);
  impl_->grad = nullptr;
}
const std::shared_ptr<Node>& Tensor::grad_fn() const { return impl_of(impl_).grad_fn; }
void Tensor::set_grad_fn(std::shared_ptr<Node> fn) {
  impl_of(impl_);
  impl_->grad_fn = std::move(fn);
}

void Tensor::backward() const {
  ENGINE_CHECK(defined() && numel() == 1, "backward(): needs a one-element tensor (a loss), got ", str(),
               "; for other tensors pass a seed gradient to run_backward()");
  run_backward(*this, full(shape(), 1.0, dtype(), device()));
}

}  // namespace engine
