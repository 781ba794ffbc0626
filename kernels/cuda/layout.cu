// CUDA layout conversion: per image a [R, S] -> [S, R] transpose through a 32x32 shared-memory tile (one padding
// column against bank conflicts), 32x8 threads: a warp reads 32 consecutive values of a row of x and writes 32
// consecutive values of a row of y, so both sides coalesce. Images beyond gridDim.z are taken in a loop.
#include <algorithm>

#include "kernels/check.h"
#include "kernels/cuda/common.cuh"
#include "kernels/layout.h"

namespace kernels::cuda {
namespace {

constexpr int kTile = 32, kRows = 8;

// y[b, j, i] = x[b, i, j] for b < batch, i < rows, j < cols.
template <class T>
__global__ void batched_transpose_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t batch, int64_t rows,
                                         int64_t cols) {
  __shared__ T tile[kTile][kTile + 1];
  const int64_t i0 = int64_t(blockIdx.y) * kTile, j0 = int64_t(blockIdx.x) * kTile;
  for (int64_t b = blockIdx.z; b < batch; b += gridDim.z) {
    const T* xb = x + b * rows * cols;
    T* yb = y + b * rows * cols;
    for (int k = threadIdx.y; k < kTile; k += kRows) {
      const int64_t i = i0 + k, j = j0 + threadIdx.x;
      if (i < rows && j < cols) tile[k][threadIdx.x] = xb[i * cols + j];
    }
    __syncthreads();
    for (int k = threadIdx.y; k < kTile; k += kRows) {
      const int64_t j = j0 + k, i = i0 + threadIdx.x;
      if (i < rows && j < cols) yb[j * rows + i] = tile[threadIdx.x][k];
    }
    __syncthreads();  // the tile is refilled for the next image
  }
}

template <class T>
void batched_transpose(const T* x, T* y, int64_t batch, int64_t rows, int64_t cols) {
  if (batch * rows * cols == 0) return;
  const int64_t gy = (rows + kTile - 1) / kTile, gx = (cols + kTile - 1) / kTile;
  KERNELS_CHECK(gy <= 65535, "layout permute: ", rows, " rows of a transpose exceed the grid");
  const dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(gy),
                  static_cast<unsigned>(std::min<int64_t>(batch, 65535)));
  batched_transpose_kernel<T><<<grid, dim3(kTile, kRows), 0, stream()>>>(x, y, batch, rows, cols);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

template <class T>
void nchw_to_nhwc(const T* x, T* y, const PermuteShape& s) {
  batched_transpose(x, y, s.n, s.c, s.h * s.w);
}

template <class T>
void nhwc_to_nchw(const T* x, T* y, const PermuteShape& s) {
  batched_transpose(x, y, s.n, s.h * s.w, s.c);
}

KERNELS_LAYOUT_INSTANTIATIONS

}  // namespace kernels::cuda
