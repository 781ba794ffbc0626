// Helpers every op front-end uses: argument checks with readable messages and the CPU/CUDA switch.
#pragma once
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/tensor.h"
#include "kernels/layout.h"

namespace engine {

[[noreturn]] void fail_no_cuda(const char* op);

// Same dtype and device for all defined tensors; names them in the error.
void check_same(const char* op, const std::vector<std::pair<const char*, Tensor>>& named);
void check_dim(const char* op, const char* what, const Tensor& t, int64_t dim);
void check_defined(const char* op, const char* what, const Tensor& t);
// A dtype the compute-only ops take (float32, float64); int32 and bfloat16 are refused (engine/tensor.h).
void check_computable(const char* op, const char* what, const Tensor& t);
// A dtype the activation ops take (float32, float64, bfloat16); int32 is refused.
void check_storage(const char* op, const char* what, const Tensor& t);

// The logical sizes of a 4-D activation stored in `layout` ([N, C, H, W] or [N, H, W, C]); x must be 4-D.
struct Dims4 {
  int64_t n, c, h, w;
};
Dims4 dims4(const Tensor& x, kernels::Layout layout);
// [N, C, H, W] in `layout`'s physical order.
Shape shape4(int64_t n, int64_t c, int64_t h, int64_t w, kernels::Layout layout);
// "x (N, C, H, W)" or "x (N, H, W, C)": names a 4-D argument with its layout in an error message.
std::string dims_name(const char* what, kernels::Layout layout);

}  // namespace engine

// ENGINE_CUDA_ONLY("op", call) runs the CUDA call, or throws a named error in a CPU-only build.
#if ENGINE_HAVE_CUDA
#define ENGINE_CUDA_ONLY(op, ...) __VA_ARGS__
#else
#define ENGINE_CUDA_ONLY(op, ...) ::engine::fail_no_cuda(op)
#endif

// ENGINE_KERNEL("op", where, kernel<T>, args...) runs kernels::cuda::kernel<T>(args...) when `where` (a tensor or
// a device) is on CUDA, else kernels::cpu::kernel<T>(args...). It is the one place that picks the backend, so an
// op names its kernel and its arguments once; no op falls back to another device, and a CPU-only build throws
// the named error. (A kernel with two template parameters lets them be deduced: `convert`, not `convert<S, D>`.)
#define ENGINE_KERNEL(op, where, kernel, ...)                     \
  do {                                                            \
    if ((where).is_cuda()) {                                      \
      ENGINE_CUDA_ONLY(op, ::kernels::cuda::kernel(__VA_ARGS__)); \
    } else {                                                      \
      ::kernels::cpu::kernel(__VA_ARGS__);                        \
    }                                                             \
  } while (0)
