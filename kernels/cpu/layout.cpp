// CPU layout conversion: per image, a [R, S] -> [S, R] transpose in 32x32 tiles (both sides stay in cache).
#include "kernels/layout.h"

namespace kernels::cpu {
namespace {

constexpr int64_t kTile = 32;

// y[b, j, i] = x[b, i, j] for b < batch, i < rows, j < cols.
template <class T>
void batched_transpose(const T* x, T* y, int64_t batch, int64_t rows, int64_t cols) {
  const int64_t ti = (rows + kTile - 1) / kTile, tj = (cols + kTile - 1) / kTile;
#pragma omp parallel for schedule(static) if (batch * rows * cols > 65536)
  for (int64_t t = 0; t < batch * ti * tj; ++t) {
    const int64_t b = t / (ti * tj), i0 = (t / tj) % ti * kTile, j0 = t % tj * kTile;
    const int64_t i1 = i0 + kTile < rows ? i0 + kTile : rows, j1 = j0 + kTile < cols ? j0 + kTile : cols;
    const T* xb = x + b * rows * cols;
    T* yb = y + b * rows * cols;
    for (int64_t j = j0; j < j1; ++j)
      for (int64_t i = i0; i < i1; ++i) yb[j * rows + i] = xb[i * cols + j];
  }
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

}  // namespace kernels::cpu
