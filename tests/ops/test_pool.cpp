#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "kernels/pool.h"
#include "tests/gradcheck.h"
#include "tests/ops/layout_host.h"
#include "tests/require_close.h"

using namespace engine;
using testing::require_close;
using testing::to_nhwc;

namespace {
Pool2dParams pool(int k, int s, int p) {
  Pool2dParams q;
  q.kernel_h = q.kernel_w = k;
  q.stride_h = q.stride_w = s;
  q.pad_h = q.pad_w = p;
  return q;
}

// x[i][j] = i * w + j for one 1x1 plane.
Tensor ramp(int64_t h, int64_t w) {
  std::vector<double> v(h * w);
  std::iota(v.begin(), v.end(), 0.0);
  Tensor t = Tensor::from_vector(v, {1, 1, h, w}, DType::f64);
  t.set_requires_grad(true);
  return t;
}

// The mean of a ramp over window rows/cols is w * mean_row + mean_col.
std::vector<double> ramp_means(int64_t w, const std::vector<double>& rows, const std::vector<double>& cols) {
  std::vector<double> out;
  for (double r : rows)
    for (double c : cols) out.push_back(w * r + c);
  return out;
}

}  // namespace

TEST_CASE("max_pool2d: forward and backward by hand", "[ops][pool]") {
  SECTION("kernel 3, stride 2, padding 1: windows overlap each other and the padding") {
    Tensor x = Tensor::from_vector({1, 5, 2, 7, 3, 9, 4, 8, 6}, {1, 1, 3, 3}, DType::f64);
    x.set_requires_grad(true);
    Tensor y = max_pool2d(x, pool(3, 2, 1));
    REQUIRE(y.shape() == Shape{1, 1, 2, 2});
    REQUIRE(y.to_vector() == std::vector<double>{7, 9, 8, 9});
    run_backward(y, Tensor::full(y.shape(), 1.0, DType::f64));
    // 9 wins two windows, so it collects both gradients.
    REQUIRE(x.grad().to_vector() == std::vector<double>{0, 0, 0, 1, 0, 2, 0, 1, 0});
  }
  SECTION("kernel 2, stride 2 on an odd 5x5: the last row and column are dropped (floor)") {
    Tensor x = ramp(5, 5);
    Tensor y = max_pool2d(x, pool(2, 2, 0));
    REQUIRE(y.shape() == Shape{1, 1, 2, 2});
    REQUIRE(y.to_vector() == std::vector<double>{6, 8, 16, 18});
    run_backward(y, Tensor::from_vector({1, 2, 3, 4}, y.shape(), DType::f64));
    std::vector<double> want(25, 0.0);
    want[6] = 1, want[8] = 2, want[16] = 3, want[18] = 4;
    REQUIRE(x.grad().to_vector() == want);
  }
  SECTION("float32 and several planes") {
    Tensor x = Tensor::from_vector({1, 4, 3, 2, -1, -4, -3, -2}, {1, 2, 2, 2}, DType::f32);
    REQUIRE(max_pool2d(x, pool(2, 2, 0)).to_vector() == std::vector<double>{4, -1});
  }
}

// Which NaN max_pool2d's argmax points at decides where the gradient goes: the first in the window, in both layouts
// and on both devices (the CUDA kernel once kept the last; the op table plants a single NaN, which cannot tell).
TEST_CASE("max_pool2d: of several NaNs in a window the first takes the gradient, CPU and CUDA", "[ops][pool][cuda]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // 1x2x2x3 (NCHW), kernel 2, stride 1: both windows of channel 0 hold two NaNs, the first at element 1.
  const std::vector<double> x_nchw = {1, nan, 2, nan, 0, nan, 6, 5, 4, 3, 2, 1};
  const std::vector<double> gy_nchw = {1, 2, 3, 4};
  const std::vector<double> want_dx_nchw = {0, 3, 0, 0, 0, 0, 3, 4, 0, 0, 0, 0};
  std::vector<Device> devices = {Device::cpu()};
  if (cuda_available()) devices.push_back(Device::cuda());
  for (Device device : devices)
    for (DType dtype : {DType::f64, DType::f32})
      for (Layout layout : {Layout::nchw, Layout::nhwc}) {
        const bool cl = layout == Layout::nhwc;
        INFO(device.str() << " " << dtype_name(dtype) << (cl ? " nhwc" : " nchw"));
        Tensor x = Tensor::from_vector(cl ? to_nhwc(x_nchw, 1, 2, 2, 3) : x_nchw,
                                       cl ? Shape{1, 2, 3, 2} : Shape{1, 2, 2, 3}, dtype)
                       .to(device);
        x.set_requires_grad(true);
        Pool2dParams p = pool(2, 1, 0);
        p.layout = layout;
        Tensor y = max_pool2d(x, p);
        const std::vector<double> got_y = y.to(Device::cpu()).to_vector();
        const std::vector<double> want_y =
            cl ? std::vector<double>{nan, 6, nan, 5} : std::vector<double>{nan, nan, 6, 5};
        REQUIRE(got_y.size() == want_y.size());
        for (size_t i = 0; i < got_y.size(); ++i)
          CHECK((std::isnan(want_y[i]) ? std::isnan(got_y[i]) : got_y[i] == want_y[i]));
        run_backward(y, Tensor::from_vector(cl ? to_nhwc(gy_nchw, 1, 2, 1, 2) : gy_nchw, y.shape(), dtype).to(device));
        CHECK(x.grad().to(Device::cpu()).to_vector() == (cl ? to_nhwc(want_dx_nchw, 1, 2, 2, 3) : want_dx_nchw));
      }
  if (!cuda_available()) WARN("CUDA part not run: " << cuda_unavailable_reason());
}

TEST_CASE("adaptive_avg_pool2d: forward and backward by hand", "[ops][pool]") {
  // 5 -> 3: windows [0, 2), [1, 4), [3, 5) with mean indices 0.5, 2, 3.5.
  Tensor x5 = ramp(5, 5);
  require_close(adaptive_avg_pool2d(x5, 3, 3).to_vector(), ramp_means(5, {0.5, 2, 3.5}, {0.5, 2, 3.5}));
  require_close(adaptive_avg_pool2d(x5, 1, 1).to_vector(), {12});
  // 5 -> 2 rows ([0, 3), [2, 5)), 5 -> 4 columns ([0, 2), [1, 3), [2, 4), [3, 5)).
  require_close(adaptive_avg_pool2d(x5, 2, 4).to_vector(), ramp_means(5, {1, 3}, {0.5, 1.5, 2.5, 3.5}));
  // 7 -> 3: windows [0, 3), [2, 5), [4, 7).
  Tensor x7 = ramp(7, 7);
  require_close(adaptive_avg_pool2d(x7, 3, 3).to_vector(), ramp_means(7, {1, 3, 5}, {1, 3, 5}));
  // 6 -> 3 divides: plain 2x2 average pooling.
  require_close(adaptive_avg_pool2d(ramp(6, 6), 3, 3).to_vector(), ramp_means(6, {0.5, 2.5, 4.5}, {0.5, 2.5, 4.5}));

  // Backward 5x5 -> 3x3 with gy = 1: x[0][0] is only in window (0, 0) of 2x2; x[1][1] is in windows of rows
  // {[0,2), [1,4)} x the same columns: (1/2 + 1/3)^2.
  Tensor y = adaptive_avg_pool2d(x5, 3, 3);
  run_backward(y, Tensor::full(y.shape(), 1.0, DType::f64));
  std::vector<double> g = x5.grad().to_vector();
  REQUIRE(g[0] == Approx(0.25));
  REQUIRE(g[6] == Approx(25.0 / 36));
  REQUIRE(std::accumulate(g.begin(), g.end(), 0.0) == Approx(9.0));  // each output hands out exactly its gradient
}

// The CUDA backward gathers through these inverse ranges; check them against brute force here, where they run.
TEST_CASE("pool: inverse window ranges match brute force", "[ops][pool]") {
  for (int64_t in = 1; in <= 12; ++in) {
    for (int64_t out = 1; out <= 12; ++out) {
      for (int64_t i = 0; i < in; ++i) {
        int64_t lo, hi;
        kernels::adaptive_outputs_of(i, in, out, &lo, &hi);
        for (int64_t o = 0; o < out; ++o) {
          const bool inside = kernels::adaptive_start(o, in, out) <= i && i < kernels::adaptive_end(o, in, out);
          INFO("adaptive in " << in << " out " << out << " i " << i << " o " << o);
          REQUIRE(inside == (lo <= o && o < hi));
        }
      }
    }
  }
  for (int k = 1; k <= 4; ++k) {
    for (int s = 1; s <= 3; ++s) {
      for (int p = 0; p <= k / 2; ++p) {
        for (int64_t in = 1; in <= 10; ++in) {
          if (in + 2 * p < k) continue;
          const int64_t out = (in + 2 * p - k) / s + 1;
          for (int64_t i = 0; i < in; ++i) {
            int64_t lo, hi;
            kernels::pool_outputs_of(i, k, s, p, out, &lo, &hi);
            for (int64_t o = 0; o < out; ++o) {
              const bool inside = o * s - p <= i && i < o * s - p + k;
              INFO("max pool k " << k << " s " << s << " p " << p << " in " << in << " i " << i << " o " << o);
              REQUIRE(inside == (lo <= o && o < hi));
            }
          }
        }
      }
    }
  }
}

TEST_CASE("pool: bad input names the problem", "[ops][pool]") {
  Tensor x = Tensor::zeros({1, 1, 4, 4});
  REQUIRE_THROWS_WITH(max_pool2d(Tensor::zeros({1, 4, 4}), pool(2, 2, 0)),
                      Catch::Contains("max_pool2d: expected x (N, C, H, W) with 4 dimensions, got [1, 4, 4]"));
  REQUIRE_THROWS_WITH(max_pool2d(x, pool(3, 2, 2)),
                      Catch::Contains("max_pool2d: padding should be at most half of the kernel, got padding 2x2 for "
                                      "kernel 3x3"));
  REQUIRE_THROWS_WITH(max_pool2d(x, pool(2, 0, 0)), Catch::Contains("max_pool2d: stride must be positive"));
  REQUIRE_THROWS_WITH(max_pool2d(Tensor::zeros({1, 1, 2, 2}), pool(3, 1, 0)),
                      Catch::Contains("max_pool2d: output size is 0x0 (too small) for x [1, 1, 2, 2]"));
  REQUIRE_THROWS_WITH(adaptive_avg_pool2d(Tensor::zeros({2, 3}), 1, 1),
                      Catch::Contains("adaptive_avg_pool2d: expected x (N, C, H, W) with 4 dimensions"));
  REQUIRE_THROWS_WITH(adaptive_avg_pool2d(x, 0, 2),
                      Catch::Contains("adaptive_avg_pool2d: output size must be positive, got 0x2"));
  REQUIRE_THROWS_WITH(adaptive_avg_pool2d(Tensor::from_vector({1, 2}, {1, 1, 1, 2}, DType::i32), 1, 1),
                      Catch::Contains("adaptive_avg_pool2d: x must be float32, float64 or bfloat16, got int32"));
}
