// Row-major GEMM on the GPU through cuBLAS. cuBLAS is column-major; a row-major C = op(A) op(B) is the
// column-major C^T = op(B)^T op(A)^T, so every call swaps A with B and m with n and keeps the trans flags.
#include <cublas_v2.h>

#include <climits>

#include "kernels/check.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/runtime.h"
#include "kernels/gemm.h"

#define CUBLAS_CHECK(expr)                                                                        \
  do {                                                                                            \
    cublasStatus_t st_ = (expr);                                                                  \
    if (st_ != CUBLAS_STATUS_SUCCESS)                                                             \
      ::kernels::cuda::throw_cuda_error(                                                          \
          #expr, __FILE__, __LINE__,                                                              \
          std::string("cuBLAS ") + cublasGetStatusName(st_) + ": " + cublasGetStatusString(st_)); \
  } while (0)

namespace kernels::cuda {
namespace {

// One handle for the process, created on first use and never destroyed (destroying it during static
// destruction can race the driver's own teardown). Created on the process's one device (bind_thread first, see
// use_device in runtime.h); bound to stream() at every call, which is cheap.
cublasHandle_t handle() {
  bind_thread();
  static cublasHandle_t h = [] {
    cublasHandle_t created = nullptr;
    CUBLAS_CHECK(cublasCreate(&created));
    // bf16 products accumulate in float (the contract the CPU reference tests): without this flag cuBLAS may
    // add split-K partial sums in bf16. TF32 is chosen per call by the compute type, not by this mode.
    CUBLAS_CHECK(cublasSetMathMode(created, CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION));
    return created;
  }();
  CUBLAS_CHECK(cublasSetStream(h, stream()));
  return h;
}

void check_range(int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb, int64_t ldc, int64_t batch = 1) {
  KERNELS_CHECK(m >= 0 && n >= 0 && k >= 0 && m <= INT_MAX && n <= INT_MAX && k <= INT_MAX && lda <= INT_MAX &&
                    ldb <= INT_MAX && ldc <= INT_MAX && batch <= INT_MAX,
                "gemm (cuBLAS): sizes m=", m, " n=", n, " k=", k, " batch=", batch, " (lda ", lda, ", ldb ", ldb,
                ", ldc ", ldc, ") do not fit cuBLAS's 32-bit integers; split the problem");
}

cublasOperation_t op(bool t) { return t ? CUBLAS_OP_T : CUBLAS_OP_N; }

// C = beta * C for the degenerate k == 0 product (cuBLAS rejects the leading dimensions such a call has).
template <class T>
__global__ void scale_rows_kernel(T* c, int64_t m, int64_t n, int64_t ldc, compute_t<T> beta) {
  CUDA_KERNEL_LOOP(i, m * n) {
    T* p = c + (i / n) * ldc + i % n;
    *p = beta == 0 ? to_storage<T>(0) : to_storage<T>(beta * to_compute(*p));
  }
}
template <class T>
void scale_rows(T* c, int64_t m, int64_t n, int64_t ldc, compute_t<T> beta) {
  scale_rows_kernel<<<grid_for(m * n, 256), 256, 0, stream()>>>(c, m, n, ldc, beta);
  CUDA_CHECK_LAUNCH();
}

cublasComputeType_t float_compute() { return allow_tf32() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F; }

void call_gemm(bool ta, bool tb, int m, int n, int k, float alpha, const float* a, int lda, const float* b, int ldb,
               float beta, float* c, int ldc) {
  CUBLAS_CHECK(cublasGemmEx(handle(), op(tb), op(ta), n, m, k, &alpha, b, CUDA_R_32F, ldb, a, CUDA_R_32F, lda, &beta, c,
                            CUDA_R_32F, ldc, float_compute(), CUBLAS_GEMM_DEFAULT));
}
// bf16 operands and result on the tensor cores, accumulating in float (CUBLAS_COMPUTE_32F), alpha and beta float:
// what the CPU twin computes with widened operands (kernels/cpu/gemm.cpp) and PyTorch's autocast GEMMs.
void call_gemm(bool ta, bool tb, int m, int n, int k, float alpha, const bf16* a, int lda, const bf16* b, int ldb,
               float beta, bf16* c, int ldc) {
  CUBLAS_CHECK(cublasGemmEx(handle(), op(tb), op(ta), n, m, k, &alpha, b, CUDA_R_16BF, ldb, a, CUDA_R_16BF, lda, &beta,
                            c, CUDA_R_16BF, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}
void call_gemm(bool ta, bool tb, int m, int n, int k, double alpha, const double* a, int lda, const double* b, int ldb,
               double beta, double* c, int ldc) {
  CUBLAS_CHECK(cublasDgemm(handle(), op(tb), op(ta), n, m, k, &alpha, b, ldb, a, lda, &beta, c, ldc));
}

void call_batched(bool ta, bool tb, int m, int n, int k, float alpha, const float* a, int lda, long long sa,
                  const float* b, int ldb, long long sb, float beta, float* c, int ldc, long long sc, int batch) {
  CUBLAS_CHECK(cublasGemmStridedBatchedEx(handle(), op(tb), op(ta), n, m, k, &alpha, b, CUDA_R_32F, ldb, sb, a,
                                          CUDA_R_32F, lda, sa, &beta, c, CUDA_R_32F, ldc, sc, batch, float_compute(),
                                          CUBLAS_GEMM_DEFAULT));
}
void call_batched(bool ta, bool tb, int m, int n, int k, float alpha, const bf16* a, int lda, long long sa,
                  const bf16* b, int ldb, long long sb, float beta, bf16* c, int ldc, long long sc, int batch) {
  CUBLAS_CHECK(cublasGemmStridedBatchedEx(handle(), op(tb), op(ta), n, m, k, &alpha, b, CUDA_R_16BF, ldb, sb, a,
                                          CUDA_R_16BF, lda, sa, &beta, c, CUDA_R_16BF, ldc, sc, batch,
                                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}
void call_batched(bool ta, bool tb, int m, int n, int k, double alpha, const double* a, int lda, long long sa,
                  const double* b, int ldb, long long sb, double beta, double* c, int ldc, long long sc, int batch) {
  CUBLAS_CHECK(cublasDgemmStridedBatched(handle(), op(tb), op(ta), n, m, k, &alpha, b, ldb, sb, a, lda, sa, &beta, c,
                                         ldc, sc, batch));
}

}  // namespace

template <class T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, compute_t<T> alpha, const T* a, int64_t lda,
          const T* b, int64_t ldb, compute_t<T> beta, T* c, int64_t ldc) {
  check_range(m, n, k, lda, ldb, ldc);
  if (m == 0 || n == 0) return;
  if (k == 0) return scale_rows(c, m, n, ldc, beta);
  call_gemm(trans_a, trans_b, int(m), int(n), int(k), alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
}

template <class T>
void gemm_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, compute_t<T> alpha, const T* a,
                          int64_t lda, int64_t stride_a, const T* b, int64_t ldb, int64_t stride_b, compute_t<T> beta,
                          T* c, int64_t ldc, int64_t stride_c, int64_t batch) {
  check_range(m, n, k, lda, ldb, ldc, batch);
  if (m == 0 || n == 0 || batch == 0) return;
  if (k == 0) {
    for (int64_t i = 0; i < batch; ++i) scale_rows(c + i * stride_c, m, n, ldc, beta);
    return;
  }
  call_batched(trans_a, trans_b, int(m), int(n), int(k), alpha, a, int(lda), stride_a, b, int(ldb), stride_b, beta, c,
               int(ldc), stride_c, int(batch));
}

void gemm_bf16_float(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a,
                     int64_t lda, const bf16* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  check_range(m, n, k, lda, ldb, ldc);
  if (m == 0 || n == 0) return;
  if (k == 0) return scale_rows(c, m, n, ldc, beta);
  CUBLAS_CHECK(cublasGemmEx(handle(), op(trans_b), op(trans_a), int(n), int(m), int(k), &alpha, b, CUDA_R_16BF,
                            int(ldb), a, CUDA_R_16BF, int(lda), &beta, c, CUDA_R_32F, int(ldc), CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT));
}

KERNELS_GEMM_INSTANTIATIONS

}  // namespace kernels::cuda
