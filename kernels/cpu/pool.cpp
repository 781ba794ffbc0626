// CPU pooling: OpenMP over (n, c) planes; backward scatters within a plane, so planes never race.
#include "kernels/pool.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/compute_buffer.h"

namespace kernels::cpu {

template <class T>
void max_pool2d_forward(const T* x, T* y, int32_t* argmax, const MaxPool2dShape& s) {
  const int64_t in_plane = s.h * s.w, out_plane = s.out_h * s.out_w;
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < s.planes; ++p) {
    const T* xp = x + p * in_plane;
    for (int64_t oh = 0; oh < s.out_h; ++oh) {
      const int64_t h0 = std::max<int64_t>(oh * s.stride_h - s.pad_h, 0);
      const int64_t h1 = std::min<int64_t>(oh * s.stride_h - s.pad_h + s.kernel_h, s.h);
      for (int64_t ow = 0; ow < s.out_w; ++ow) {
        const int64_t w0 = std::max<int64_t>(ow * s.stride_w - s.pad_w, 0);
        const int64_t w1 = std::min<int64_t>(ow * s.stride_w - s.pad_w + s.kernel_w, s.w);
        // The maximum without branches (a max instruction; NaN is noted on the side and wins, as in PyTorch),
        // then the first tap that holds it. Tracking value and index in one loop branched on every tap, which
        // real activations mispredict often (timings in docs/benchmarks.md, "Measurements behind code choices").
        using C = compute_t<T>;  // compared in, exactly: the maximum is one of the inputs (or NaN)
        C best = -std::numeric_limits<C>::infinity();
        bool any_nan = false;
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) {
            const C v = to_compute(xp[ih * s.w + iw]);
            best = best < v ? v : best;
            any_nan |= v != v;
          }
        if (any_nan) best = std::numeric_limits<C>::quiet_NaN();
        int64_t best_i = -1;
        for (int64_t ih = h0; ih < h1 && best_i < 0; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) {
            const C v = to_compute(xp[ih * s.w + iw]);
            if (any_nan ? v != v : v == best) {
              best_i = ih * s.w + iw;
              break;
            }
          }
        y[p * out_plane + oh * s.out_w + ow] = to_storage<T>(best);
        argmax[p * out_plane + oh * s.out_w + ow] = static_cast<int32_t>(best_i);
      }
    }
  }
}

template <class T>
void max_pool2d_backward(const T* gy, const int32_t* argmax, T* gx, const MaxPool2dShape& s) {
  const int64_t in_plane = s.h * s.w, out_plane = s.out_h * s.out_w;
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < s.planes; ++p) {
    ComputeBuffer<T> acc(gx + p * in_plane, in_plane);  // overlapping windows add several terms to one pixel
    acc.zero();
    compute_t<T>* gp = acc.data();
    for (int64_t o = 0; o < out_plane; ++o) gp[argmax[p * out_plane + o]] += to_compute(gy[p * out_plane + o]);
    acc.store();
  }
}

template <class T>
void adaptive_avg_pool2d_forward(const T* x, T* y, const AdaptivePool2dShape& s) {
  const int64_t in_plane = s.h * s.w, out_plane = s.out_h * s.out_w;
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < s.planes; ++p) {
    const T* xp = x + p * in_plane;
    for (int64_t oh = 0; oh < s.out_h; ++oh) {
      const int64_t h0 = adaptive_start(oh, s.h, s.out_h), h1 = adaptive_end(oh, s.h, s.out_h);
      for (int64_t ow = 0; ow < s.out_w; ++ow) {
        const int64_t w0 = adaptive_start(ow, s.w, s.out_w), w1 = adaptive_end(ow, s.w, s.out_w);
        double sum = 0;
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) sum += convert_value<double>(xp[ih * s.w + iw]);
        y[p * out_plane + oh * s.out_w + ow] = convert_value<T>(sum / double((h1 - h0) * (w1 - w0)));
      }
    }
  }
}

template <class T>
void adaptive_avg_pool2d_backward(const T* gy, T* gx, const AdaptivePool2dShape& s) {
  const int64_t in_plane = s.h * s.w, out_plane = s.out_h * s.out_w;
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < s.planes; ++p) {
    ComputeBuffer<T> acc(gx + p * in_plane, in_plane);
    acc.zero();
    compute_t<T>* gp = acc.data();
    for (int64_t oh = 0; oh < s.out_h; ++oh) {
      const int64_t h0 = adaptive_start(oh, s.h, s.out_h), h1 = adaptive_end(oh, s.h, s.out_h);
      for (int64_t ow = 0; ow < s.out_w; ++ow) {
        const int64_t w0 = adaptive_start(ow, s.w, s.out_w), w1 = adaptive_end(ow, s.w, s.out_w);
        using C = compute_t<T>;
        const C g = to_compute(gy[p * out_plane + oh * s.out_w + ow]) / C((h1 - h0) * (w1 - w0));
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) gp[ih * s.w + iw] += g;
      }
    }
    acc.store();
  }
}

KERNELS_POOL_INSTANTIATIONS

}  // namespace kernels::cpu
