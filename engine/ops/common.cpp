#include "engine/ops/common.h"

namespace engine {

void fail_no_cuda(const char* op) {
  fail(cat(op, ": tensor is on CUDA, but this engine was built without CUDA (rebuild with -DENGINE_CUDA=ON)"));
}

void check_defined(const char* op, const char* what, const Tensor& t) {
  ENGINE_CHECK(t.defined(), op, ": ", what, " is an undefined tensor");
}

void check_computable(const char* op, const char* what, const Tensor& t) {
  check_defined(op, what, t);
  if (t.dtype() != DType::f32 && t.dtype() != DType::f64) fail_not_computable(op, what, t.dtype());
}

void check_storage(const char* op, const char* what, const Tensor& t) {
  check_defined(op, what, t);
  ENGINE_CHECK(t.dtype() != DType::i32, op, ": ", what, " must be float32, float64 or bfloat16, got int32");
}

void check_same(const char* op, const std::vector<std::pair<const char*, Tensor>>& named) {
  const Tensor* first = nullptr;
  const char* first_name = nullptr;
  for (const auto& [name, t] : named) {
    if (!t.defined()) continue;
    if (!first) {
      first = &t;
      first_name = name;
      continue;
    }
    ENGINE_CHECK(t.dtype() == first->dtype(), op, ": ", name, " is ", dtype_name(t.dtype()), " but ", first_name,
                 " is ", dtype_name(first->dtype()), "; convert with .to(DType)");
    ENGINE_CHECK(t.device() == first->device(), op, ": ", name, " is on ", t.device().str(), " but ", first_name,
                 " is on ", first->device().str(), "; move it with .to(Device)");
  }
}

void check_dim(const char* op, const char* what, const Tensor& t, int64_t dim) {
  check_defined(op, what, t);
  ENGINE_CHECK(t.dim() == dim, op, ": expected ", what, " with ", dim, " dimensions, got ", shape_str(t.shape()));
}

Dims4 dims4(const Tensor& x, kernels::Layout layout) {
  if (layout == kernels::Layout::nhwc) return {x.size(0), x.size(3), x.size(1), x.size(2)};
  return {x.size(0), x.size(1), x.size(2), x.size(3)};
}

Shape shape4(int64_t n, int64_t c, int64_t h, int64_t w, kernels::Layout layout) {
  return layout == kernels::Layout::nhwc ? Shape{n, h, w, c} : Shape{n, c, h, w};
}

std::string dims_name(const char* what, kernels::Layout layout) {
  return cat(what, layout == kernels::Layout::nhwc ? " (N, H, W, C)" : " (N, C, H, W)");
}

}  // namespace engine
