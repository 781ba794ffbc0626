// CPU pooling: OpenMP over (n, c) planes; backward scatters within a plane, so planes never race. NHWC: OpenMP
// over output rows (forward) or images (backward), channels innermost; each element's terms come in the NCHW order.
#include "kernels/pool.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/check.h"
#include "kernels/cpu/compute_buffer.h"

namespace kernels::cpu {
namespace {

// NHWC max pool: per output pixel, the branch-free maximum of each channel over the window (NaN noted aside and
// winning), then the first tap holding it, the taps in the NCHW kernel's row-major order.
template <class T>
void max_pool2d_forward_nhwc(const T* x, T* y, int32_t* argmax, const MaxPool2dShape& s) {
  using C = compute_t<T>;
  const int64_t n_img = s.planes / s.c, ch = s.c;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < n_img * s.out_h; ++r) {
    const int64_t n = r / s.out_h, oh = r % s.out_h;
    const T* xn = x + n * s.h * s.w * ch;
    std::vector<C> best(ch);
    std::vector<char> any_nan(ch);
    std::vector<int64_t> best_i(ch);
    const int64_t h0 = std::max<int64_t>(oh * s.stride_h - s.pad_h, 0);
    const int64_t h1 = std::min<int64_t>(oh * s.stride_h - s.pad_h + s.kernel_h, s.h);
    for (int64_t ow = 0; ow < s.out_w; ++ow) {
      const int64_t w0 = std::max<int64_t>(ow * s.stride_w - s.pad_w, 0);
      const int64_t w1 = std::min<int64_t>(ow * s.stride_w - s.pad_w + s.kernel_w, s.w);
      std::fill(best.begin(), best.end(), -std::numeric_limits<C>::infinity());
      std::fill(any_nan.begin(), any_nan.end(), 0);
      std::fill(best_i.begin(), best_i.end(), -1);
      for (int64_t ih = h0; ih < h1; ++ih)
        for (int64_t iw = w0; iw < w1; ++iw) {
          const T* xp = xn + (ih * s.w + iw) * ch;
          for (int64_t c = 0; c < ch; ++c) {
            const C v = to_compute(xp[c]);
            best[c] = best[c] < v ? v : best[c];
            any_nan[c] |= v != v;
          }
        }
      for (int64_t c = 0; c < ch; ++c)
        if (any_nan[c]) best[c] = std::numeric_limits<C>::quiet_NaN();
      for (int64_t ih = h0; ih < h1; ++ih)
        for (int64_t iw = w0; iw < w1; ++iw) {
          const T* xp = xn + (ih * s.w + iw) * ch;
          for (int64_t c = 0; c < ch; ++c) {
            const C v = to_compute(xp[c]);
            if (best_i[c] < 0 && (any_nan[c] ? v != v : v == best[c])) best_i[c] = ih * s.w + iw;
          }
        }
      const int64_t o = ((n * s.out_h + oh) * s.out_w + ow) * ch;
      for (int64_t c = 0; c < ch; ++c) {
        y[o + c] = to_storage<T>(best[c]);
        argmax[o + c] = static_cast<int32_t>(best_i[c]);
      }
    }
  }
}

template <class T>
void max_pool2d_backward_nhwc(const T* gy, const int32_t* argmax, T* gx, const MaxPool2dShape& s) {
  const int64_t n_img = s.planes / s.c, ch = s.c, in_img = s.h * s.w * ch, out_pix = s.out_h * s.out_w;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < n_img; ++n) {
    ComputeBuffer<T> acc(gx + n * in_img, in_img);
    acc.zero();
    compute_t<T>* gp = acc.data();
    const T* gyn = gy + n * out_pix * ch;
    const int32_t* an = argmax + n * out_pix * ch;
    for (int64_t o = 0; o < out_pix; ++o)
      for (int64_t c = 0; c < ch; ++c) gp[an[o * ch + c] * ch + c] += to_compute(gyn[o * ch + c]);
    acc.store();
  }
}

template <class T>
void adaptive_avg_pool2d_forward_nhwc(const T* x, T* y, const AdaptivePool2dShape& s) {
  const int64_t n_img = s.planes / s.c, ch = s.c;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < n_img * s.out_h; ++r) {
    const int64_t n = r / s.out_h, oh = r % s.out_h;
    const T* xn = x + n * s.h * s.w * ch;
    std::vector<double> sum(ch);
    const int64_t h0 = adaptive_start(oh, s.h, s.out_h), h1 = adaptive_end(oh, s.h, s.out_h);
    for (int64_t ow = 0; ow < s.out_w; ++ow) {
      const int64_t w0 = adaptive_start(ow, s.w, s.out_w), w1 = adaptive_end(ow, s.w, s.out_w);
      std::fill(sum.begin(), sum.end(), 0.0);
      for (int64_t ih = h0; ih < h1; ++ih)
        for (int64_t iw = w0; iw < w1; ++iw) {
          const T* xp = xn + (ih * s.w + iw) * ch;
          for (int64_t c = 0; c < ch; ++c) sum[c] += convert_value<double>(xp[c]);
        }
      T* yp = y + ((n * s.out_h + oh) * s.out_w + ow) * ch;
      const double size = double((h1 - h0) * (w1 - w0));
      for (int64_t c = 0; c < ch; ++c) yp[c] = convert_value<T>(sum[c] / size);
    }
  }
}

template <class T>
void adaptive_avg_pool2d_backward_nhwc(const T* gy, T* gx, const AdaptivePool2dShape& s) {
  using C = compute_t<T>;
  const int64_t n_img = s.planes / s.c, ch = s.c, in_img = s.h * s.w * ch;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < n_img; ++n) {
    ComputeBuffer<T> acc(gx + n * in_img, in_img);
    acc.zero();
    C* gp = acc.data();
    std::vector<C> g(ch);
    for (int64_t oh = 0; oh < s.out_h; ++oh) {
      const int64_t h0 = adaptive_start(oh, s.h, s.out_h), h1 = adaptive_end(oh, s.h, s.out_h);
      for (int64_t ow = 0; ow < s.out_w; ++ow) {
        const int64_t w0 = adaptive_start(ow, s.w, s.out_w), w1 = adaptive_end(ow, s.w, s.out_w);
        const T* gyp = gy + ((n * s.out_h + oh) * s.out_w + ow) * ch;
        for (int64_t c = 0; c < ch; ++c) g[c] = to_compute(gyp[c]) / C((h1 - h0) * (w1 - w0));
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) {
            C* gq = gp + (ih * s.w + iw) * ch;
            for (int64_t c = 0; c < ch; ++c) gq[c] += g[c];
          }
      }
    }
    acc.store();
  }
}

}  // namespace

template <class T>
void max_pool2d_forward(const T* x, T* y, int32_t* argmax, const MaxPool2dShape& s) {
  KERNELS_CHECK(pool_channels_ok(s),
                "max_pool2d_forward: an NHWC shape needs its channel count c (a divisor of planes)");
  if (s.layout == Layout::nhwc) return max_pool2d_forward_nhwc(x, y, argmax, s);
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
  KERNELS_CHECK(pool_channels_ok(s),
                "max_pool2d_backward: an NHWC shape needs its channel count c (a divisor of planes)");
  if (s.layout == Layout::nhwc) return max_pool2d_backward_nhwc(gy, argmax, gx, s);
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
  KERNELS_CHECK(pool_channels_ok(s),
                "adaptive_avg_pool2d_forward: an NHWC shape needs its channel count c (a divisor of planes)");
  if (s.layout == Layout::nhwc) return adaptive_avg_pool2d_forward_nhwc(x, y, s);
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
  KERNELS_CHECK(pool_channels_ok(s),
                "adaptive_avg_pool2d_backward: an NHWC shape needs its channel count c (a divisor of planes)");
  if (s.layout == Layout::nhwc) return adaptive_avg_pool2d_backward_nhwc(gy, gx, s);
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
