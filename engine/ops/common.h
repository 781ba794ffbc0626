// Helpers every op front-end uses: argument checks with readable messages and the CPU/CUDA switch.
#pragma once
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/tensor.h"

namespace engine {

[[noreturn]] void fail_no_cuda(const char* op);

// Same dtype and device for all defined tensors; names them in the error.
void check_same(const char* op, const std::vector<std::pair<const char*, Tensor>>& named);
void check_dim(const char* op, const char* what, const Tensor& t, int64_t dim);
void check_defined(const char* op, const char* what, const Tensor& t);

}  // namespace engine

// ENGINE_CUDA_ONLY("op", call) runs the CUDA call, or throws a named error in a CPU-only build.
#if ENGINE_HAVE_CUDA
#define ENGINE_CUDA_ONLY(op, ...) __VA_ARGS__
#else
#define ENGINE_CUDA_ONLY(op, ...) ::engine::fail_no_cuda(op)
#endif
