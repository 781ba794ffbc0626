// Shared by the cuDNN paths: the checked-call macro (keeps the expression, file, line, status and cuDNN's own
// last error text), the cuDNN data type of our element types, and (through common.cuh) kernels::cuda::stream(),
// which every handle must be bound to. Only compiled when ENGINE_HAVE_CUDNN.
#pragma once
#include <cudnn.h>

#include <string>

#include "kernels/check.h"
#include "kernels/cuda/common.cuh"
#include "kernels/dtype.h"

namespace kernels::cudnn {

[[noreturn]] inline void throw_cudnn_error(const char* expr, const char* file, int line, cudnnStatus_t st) {
  char detail[512] = {0};
  cudnnGetLastErrorString(detail, sizeof(detail));
  kernels::fail(kernels::cat(
      "cuDNN error: ", cudnnGetErrorString(st), (detail[0] ? ": " : ""), detail, "\n  in ", expr, "\n  at ", file, ":",
      line,
      "\n  (set_conv_engine(ConvEngine::native) / set_batch_norm_engine(...native) run the engine's own kernels "
      "instead)"));
}

// The one cuDNN handle of the process, on its one device, bound to kernels::cuda::stream() (kernels/cudnn/handle.cpp).
cudnnHandle_t handle();

template <class T>
constexpr cudnnDataType_t data_type();
template <>
constexpr cudnnDataType_t data_type<float>() {
  return CUDNN_DATA_FLOAT;
}
template <>
constexpr cudnnDataType_t data_type<double>() {
  return CUDNN_DATA_DOUBLE;
}
template <>
constexpr cudnnDataType_t data_type<bf16>() {
  return CUDNN_DATA_BFLOAT16;
}
// The type a convolution computes (accumulates) in: cuDNN's "pseudo-bf16" configuration for bf16 data (float
// accumulation, as our kernels and PyTorch's), the data's own type otherwise.
template <class T>
constexpr cudnnDataType_t compute_type() {
  return data_type<compute_t<T>>();
}

}  // namespace kernels::cudnn

#define CUDNN_CHECK(expr)                                                                                 \
  do {                                                                                                    \
    cudnnStatus_t st_ = (expr);                                                                           \
    if (st_ != CUDNN_STATUS_SUCCESS) ::kernels::cudnn::throw_cudnn_error(#expr, __FILE__, __LINE__, st_); \
  } while (0)
