// Row-major GEMM: C[m, n] = alpha * op(A)[m, k] * op(B)[k, n] + beta * C, op = transpose when trans_* is set.
// lda/ldb/ldc are the row strides of A, B, C as stored (before op). CPU wraps OpenBLAS cblas_?gemm, CUDA wraps
// cuBLAS on kernels::cuda::stream(); for float the CUDA version uses TF32 tensor cores only when
// kernels::cuda::allow_tf32() is set. All sizes must fit in 32 bits (BLAS ints); the wrappers check that.
#pragma once
#include <cstdint>

#include "kernels/dtype.h"

namespace kernels {
namespace cpu {
template <class T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, compute_t<T> alpha, const T* a, int64_t lda,
          const T* b, int64_t ldb, compute_t<T> beta, T* c, int64_t ldc);
// `batch` independent GEMMs; matrix i uses a + i*stride_a, b + i*stride_b, c + i*stride_c.
template <class T>
void gemm_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, compute_t<T> alpha, const T* a,
                          int64_t lda, int64_t stride_a, const T* b, int64_t ldb, int64_t stride_b, compute_t<T> beta,
                          T* c, int64_t ldc, int64_t stride_c, int64_t batch);
}  // namespace cpu
namespace cuda {
template <class T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, compute_t<T> alpha, const T* a, int64_t lda,
          const T* b, int64_t ldb, compute_t<T> beta, T* c, int64_t ldc);
template <class T>
void gemm_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, compute_t<T> alpha, const T* a,
                          int64_t lda, int64_t stride_a, const T* b, int64_t ldb, int64_t stride_b, compute_t<T> beta,
                          T* c, int64_t ldc, int64_t stride_c, int64_t batch);
// bf16 operands, float result (C stays float): for a sum that spans several GEMMs (a convolution's weight gradient
// over im2col chunks), so it is rounded to bf16 once at the end. CUDA only: the CPU widens bf16 convolutions to
// float before any GEMM, so its sums stay float throughout.
void gemm_bf16_float(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a,
                     int64_t lda, const bf16* b, int64_t ldb, float beta, float* c, int64_t ldc);
}  // namespace cuda
}  // namespace kernels

// The explicit instantiations that kernels/cpu/gemm.cpp and kernels/cuda/gemm.cu both compile, each inside its own
// namespace, for every storage type (kernels/dtype.h), so the two twins always provide the same set.
#define KERNELS_GEMM_INSTANTIATE(T)                                                                                \
  template void gemm<T>(bool, bool, int64_t, int64_t, int64_t, compute_t<T>, const T*, int64_t, const T*, int64_t, \
                        compute_t<T>, T*, int64_t);                                                                \
  template void gemm_strided_batched<T>(bool, bool, int64_t, int64_t, int64_t, compute_t<T>, const T*, int64_t,    \
                                        int64_t, const T*, int64_t, int64_t, compute_t<T>, T*, int64_t, int64_t,   \
                                        int64_t);
#define KERNELS_GEMM_INSTANTIATIONS KERNELS_FOR_EACH_STORAGE(KERNELS_GEMM_INSTANTIATE)
