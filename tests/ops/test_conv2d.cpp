// conv2d on the CPU: values by hand, a naive direct convolution (forward and all three gradients) for random
// shapes including a batch split into several im2col chunks, float64 gradient checks over kernel sizes,
// strides, paddings, batch sizes and bias, and the error messages for bad arguments.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <string>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "kernels/conv.h"
#include "tests/gradcheck.h"
#include "tests/ops/conv_case.h"

using namespace engine;
using testing::close_ratio;
using testing::gradcheck;
using testing::rand_leaf;

namespace {

using Case = testing::ConvCase;
using testing::describe;
using testing::params;

int64_t out_size(int64_t in, int64_t k, int64_t stride, int64_t pad) { return (in + 2 * pad - k) / stride + 1; }

// Direct definition: y[n, o, i, j] = b[o] + sum_{c, a, b} x[n, c, i*sh - ph + a, j*sw - pw + b] * w[o, c, a, b],
// and the three gradients for an upstream gradient g, each written straight from that sum.
struct Naive {
  Case k;
  int64_t oh, ow;
  explicit Naive(const Case& c)
      : k(c), oh(out_size(c.h, c.kh, c.p.stride_h, c.p.pad_h)), ow(out_size(c.w, c.kw, c.p.stride_w, c.p.pad_w)) {}

  template <class F>
  void for_each_tap(F f) const {  // f(x index, w index, y index) for every product in the sum
    for (int64_t n = 0; n < k.n; ++n)
      for (int64_t o = 0; o < k.oc; ++o)
        for (int64_t i = 0; i < oh; ++i)
          for (int64_t j = 0; j < ow; ++j)
            for (int64_t c = 0; c < k.c; ++c)
              for (int64_t a = 0; a < k.kh; ++a)
                for (int64_t b = 0; b < k.kw; ++b) {
                  int64_t ih = i * k.p.stride_h - k.p.pad_h + a, iw = j * k.p.stride_w - k.p.pad_w + b;
                  if (ih < 0 || ih >= k.h || iw < 0 || iw >= k.w) continue;
                  f(((n * k.c + c) * k.h + ih) * k.w + iw, ((o * k.c + c) * k.kh + a) * k.kw + b,
                    ((n * k.oc + o) * oh + i) * ow + j);
                }
  }
  std::vector<double> forward(const std::vector<double>& x, const std::vector<double>& w,
                              const std::vector<double>& bias) const {
    std::vector<double> y(k.n * k.oc * oh * ow, 0.0);
    if (!bias.empty())
      for (size_t i = 0; i < y.size(); ++i) y[i] = bias[(i / (oh * ow)) % k.oc];
    for_each_tap([&](int64_t xi, int64_t wi, int64_t yi) { y[yi] += x[xi] * w[wi]; });
    return y;
  }
  std::vector<double> grad_x(const std::vector<double>& g, const std::vector<double>& w) const {
    std::vector<double> gx(k.n * k.c * k.h * k.w, 0.0);
    for_each_tap([&](int64_t xi, int64_t wi, int64_t yi) { gx[xi] += g[yi] * w[wi]; });
    return gx;
  }
  std::vector<double> grad_w(const std::vector<double>& g, const std::vector<double>& x) const {
    std::vector<double> gw(k.oc * k.c * k.kh * k.kw, 0.0);
    for_each_tap([&](int64_t xi, int64_t wi, int64_t yi) { gw[wi] += g[yi] * x[xi]; });
    return gw;
  }
  std::vector<double> grad_b(const std::vector<double>& g) const {
    std::vector<double> gb(k.oc, 0.0);
    for (size_t i = 0; i < g.size(); ++i) gb[(i / (oh * ow)) % k.oc] += g[i];
    return gb;
  }
};

// Forward and backward through the engine against the naive loops, in the dtype asked for.
void check_against_naive(const Case& k, DType dt, double tol) {
  INFO(describe(k) << " " << dtype_name(dt));
  Tensor x = rand_leaf({k.n, k.c, k.h, k.w}, 11, dt);
  Tensor w = rand_leaf({k.oc, k.c, k.kh, k.kw}, 12, dt);
  Tensor b = k.bias ? rand_leaf({k.oc}, 13, dt) : Tensor();
  Naive ref(k);
  Tensor y = conv2d(x, w, b, k.p);
  REQUIRE(y.shape() == Shape{k.n, k.oc, ref.oh, ref.ow});
  std::vector<double> bv = k.bias ? b.to_vector() : std::vector<double>{};
  // |ours - naive| <= tol * max(1, |naive|)
  CHECK_OK(testing::compare_scaled(y.to_vector(), ref.forward(x.to_vector(), w.to_vector(), bv), tol));

  Generator gen(14);
  Tensor g = randn(y.shape(), dt, Device::cpu(), gen);
  run_backward(y, g);
  std::vector<double> gv = g.to_vector();
  CHECK_OK(testing::compare_scaled(x.grad().to_vector(), ref.grad_x(gv, w.to_vector()), tol));
  CHECK_OK(testing::compare_scaled(w.grad().to_vector(), ref.grad_w(gv, x.to_vector()), tol));
  if (k.bias) CHECK_OK(testing::compare_scaled(b.grad().to_vector(), ref.grad_b(gv), tol));
}

}  // namespace

TEST_CASE("conv2d: forward values by hand (1x1x3x3 input, 2x2 kernel)", "[ops][conv]") {
  // x = [[1 2 3] [4 5 6] [7 8 9]], w = [[1 2] [3 4]]
  Tensor x = Tensor::from_vector({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3}, DType::f64);
  Tensor w = Tensor::from_vector({1, 2, 3, 4}, {1, 1, 2, 2}, DType::f64);
  // stride 1, no padding: 1+4+12+20 = 37, 2+6+15+24 = 47, ...
  Tensor y = conv2d(x, w, Tensor(), params(1, 1, 0, 0));
  REQUIRE(y.shape() == Shape{1, 1, 2, 2});
  REQUIRE(y.to_vector() == std::vector<double>{37, 47, 67, 77});
  // stride 2: only the top-left window fits.
  REQUIRE(conv2d(x, w, Tensor(), params(2, 2, 0, 0)).to_vector() == std::vector<double>{37});
  // padding 1: a 5x5 padded input gives 4x4.
  Tensor yp = conv2d(x, w, Tensor(), params(1, 1, 1, 1));
  REQUIRE(yp.shape() == Shape{1, 1, 4, 4});
  REQUIRE(yp.to_vector() == std::vector<double>{4, 11, 18, 9, 18, 37, 47, 21, 36, 67, 77, 33, 14, 23, 26, 9});
  // padding 1, stride 2: rows and columns 0 and 2 of the above.
  REQUIRE(conv2d(x, w, Tensor(), params(2, 2, 1, 1)).to_vector() == std::vector<double>{4, 18, 36, 77});
  // bias is added to every output pixel; float32 gives the same small integers exactly.
  Tensor b = Tensor::from_vector({0.5}, {1}, DType::f64);
  REQUIRE(conv2d(x, w, b, params(1, 1, 0, 0)).to_vector() == std::vector<double>{37.5, 47.5, 67.5, 77.5});
  REQUIRE(conv2d(x.to(DType::f32), w.to(DType::f32), b.to(DType::f32), params(1, 1, 0, 0)).to_vector() ==
          std::vector<double>{37.5, 47.5, 67.5, 77.5});
}

TEST_CASE("conv2d: two images, two channels in and out, by hand", "[ops][conv]") {
  // Image 0 channel 0 is all ones, channel 1 all twos; image 1 is image 0 times -1. 1x1 kernels mix channels:
  // out0 = 1*c0 + 10*c1 (+100), out1 = -1*c0 + 0.5*c1 (+0).
  std::vector<double> xv;
  for (double s : {1.0, -1.0})
    for (double v : {1.0, 2.0})
      for (int i = 0; i < 4; ++i) xv.push_back(s * v);
  Tensor x = Tensor::from_vector(xv, {2, 2, 2, 2}, DType::f64);
  Tensor w = Tensor::from_vector({1, 10, -1, 0.5}, {2, 2, 1, 1}, DType::f64);
  Tensor b = Tensor::from_vector({100, 0}, {2}, DType::f64);
  std::vector<double> want;
  for (double s : {1.0, -1.0})
    for (double v : {s * 21 + 100, s * 0.0})
      for (int i = 0; i < 4; ++i) want.push_back(v);
  REQUIRE(conv2d(x, w, b, Conv2dParams{}).to_vector() == want);
}

TEST_CASE("conv2d: forward and gradients match a direct convolution", "[ops][conv]") {
  const std::vector<Case> cases = {
      {1, 1, 5, 5, 1, 3, 3, params(1, 1, 0, 0), false},
      {3, 2, 7, 9, 4, 3, 3, params(1, 1, 1, 1), true},
      {3, 3, 8, 8, 5, 1, 1, params(1, 1, 0, 0), true},   // pointwise: im2col is a permute
      {1, 4, 6, 6, 3, 1, 1, params(1, 1, 0, 0), false},  // pointwise, one image: no im2col at all
      {2, 3, 9, 7, 2, 1, 1, params(2, 2, 0, 0), true},   // strided 1x1 (the ResNet shortcut)
      {2, 3, 11, 13, 4, 7, 7, params(2, 2, 3, 3), true},
      {3, 2, 7, 9, 3, 3, 5, params(2, 1, 1, 2), true},  // asymmetric kernel, stride and padding
      {2, 2, 5, 6, 2, 2, 3, params(3, 2, 0, 1), false},
      {1, 1, 4, 4, 2, 3, 3, params(1, 1, 3, 3), true},  // padding as large as the kernel: some outputs see only zeros
      // Kernels cropped to their live taps (kernels::live_taps):
      {3, 4, 1, 1, 5, 3, 3, params(1, 1, 1, 1), true},   // 1x1 input: only the centre tap reads the image
      {1, 4, 1, 1, 5, 3, 3, params(1, 1, 1, 1), false},  // ... and one image: a plain GEMM on x
      {3, 2, 2, 2, 3, 3, 3, params(2, 2, 1, 1), true},   // 2x2 input, stride 2: rows/cols 1..2 only
      {2, 2, 1, 5, 3, 3, 3, params(2, 1, 2, 1), true},   // 1-row input, pad 2, stride 2: rows 0 and 2 live, 1 dead
      {2, 2, 1, 1, 3, 1, 1, params(4, 4, 3, 3), true},   // no tap ever reads the image: the output is the bias
      // Small padded maps (ResNet's at 28 px). Where every output reads its whole input plane, the CPU runs the
      // convolution as one dense-matrix GEMM (kernels/cpu/conv.cpp, use_dense):
      {3, 5, 4, 4, 6, 3, 3, params(1, 1, 1, 1), true},   // 4x4: im2col by tables
      {2, 4, 2, 2, 3, 3, 3, params(1, 1, 1, 1), false},  // 2x2, pad 1: dense
      {4, 3, 1, 2, 4, 3, 3, params(1, 1, 1, 1), true},   // 1x2: rows cropped to the centre tap, then dense
      {3, 3, 7, 7, 4, 3, 3, params(2, 2, 1, 1), true},   // 7x7 stride 2 -> 4x4 (ResNet's downsampling)
      {2, 3, 4, 5, 2, 3, 3, params(2, 1, 1, 1), true},   // 4x5 -> 2x5, asymmetric stride
      {2, 2, 3, 3, 2, 5, 5, params(1, 1, 3, 3), true},   // pad 3 > tap reach: some pixels read only padding
  };
  for (const Case& k : cases) {
    check_against_naive(k, DType::f64, 1e-12);
    check_against_naive(k, DType::f32, 1e-5);
  }
}

TEST_CASE("conv2d: a batch split over several im2col chunks matches a direct convolution", "[ops][conv]") {
  // One image needs 27 * 128 * 128 = 442k column elements; the CPU chunk budget (16M) takes 37 images, so 40
  // images run as a chunk of 37 and one of 3, and dW must accumulate over both.
  check_against_naive({40, 3, 128, 128, 2, 3, 3, params(1, 1, 1, 1), true}, DType::f64, 1e-11);
}

TEST_CASE("conv2d: gradient check in float64", "[ops][conv][gradcheck]") {
  // Input 7x9 (odd, not square), C = 2, OC = 3, over kernels 1/3/7, strides 1/2, paddings 0/1/3, batch 1/3.
  const std::vector<Case> cases = {
      {1, 2, 7, 9, 3, 1, 1, params(1, 1, 0, 0), true},  {3, 2, 7, 9, 3, 1, 1, params(2, 2, 0, 0), false},
      {3, 2, 7, 9, 3, 1, 1, params(1, 1, 1, 1), true},  {3, 2, 7, 9, 3, 3, 3, params(1, 1, 1, 1), true},
      {1, 2, 7, 9, 3, 3, 3, params(2, 2, 1, 1), false}, {3, 2, 7, 9, 3, 3, 3, params(2, 2, 0, 0), true},
      {1, 2, 7, 9, 3, 3, 3, params(1, 1, 3, 3), true},  {1, 2, 7, 9, 3, 7, 7, params(2, 2, 3, 3), true},
      {3, 2, 7, 9, 3, 7, 7, params(1, 1, 3, 3), false}, {3, 2, 7, 9, 3, 7, 7, params(2, 2, 1, 1), true},
      {3, 2, 7, 9, 3, 3, 1, params(2, 1, 1, 0), true},  {3, 2, 1, 1, 3, 3, 3, params(1, 1, 1, 1), true},
      {3, 2, 2, 3, 3, 3, 3, params(2, 2, 1, 1), true},  {2, 3, 4, 4, 3, 3, 3, params(1, 1, 1, 1), true},
      {2, 3, 2, 2, 4, 3, 3, params(1, 1, 1, 1), false}, {2, 2, 3, 3, 2, 5, 5, params(1, 1, 3, 3), true},
  };
  uint64_t seed = 100;
  for (const Case& k : cases) {
    INFO(describe(k));
    Tensor x = rand_leaf({k.n, k.c, k.h, k.w}, seed++);
    Tensor w = rand_leaf({k.oc, k.c, k.kh, k.kw}, seed++);
    if (k.bias) {
      Tensor b = rand_leaf({k.oc}, seed++);
      REQUIRE_GRADCHECK(gradcheck([&] { return conv2d(x, w, b, k.p); }, {x, w, b}));
    } else {
      REQUIRE_GRADCHECK(gradcheck([&] { return conv2d(x, w, Tensor(), k.p); }, {x, w}));
    }
  }
}

TEST_CASE("conv2d: live kernel taps", "[ops][conv]") {
  auto taps = [](int64_t h, int64_t w, int64_t k, int stride, int pad) {
    kernels::Conv2dShape s;
    s.n = 1, s.c = 1, s.h = h, s.w = w, s.oc = 1, s.kh = s.kw = k, s.stride_h = s.stride_w = stride;
    s.pad_h = s.pad_w = pad;
    s.oh = (h + 2 * pad - k) / stride + 1, s.ow = (w + 2 * pad - k) / stride + 1;
    kernels::LiveTaps t = kernels::live_taps(s);
    return std::vector<int64_t>{t.i0, t.i1, t.j0, t.j1, t.crops(s) ? 1 : 0};
  };
  REQUIRE(taps(1, 1, 3, 1, 1) == std::vector<int64_t>{1, 2, 1, 2, 1});  // 1x1 input: the centre
  REQUIRE(taps(2, 2, 3, 2, 1) == std::vector<int64_t>{1, 3, 1, 3, 1});  // one output reads rows/cols 1..2
  REQUIRE(taps(7, 7, 3, 1, 1) == std::vector<int64_t>{0, 3, 0, 3, 0});  // everything live: no crop
  REQUIRE(taps(1, 9, 3, 2, 2) == std::vector<int64_t>{0, 3, 0, 3, 0});  // rows 0 and 2 live: nothing to crop
  REQUIRE(taps(1, 1, 1, 4, 3) == std::vector<int64_t>{0, 0, 0, 0, 0});  // nothing live
}

TEST_CASE("conv2d: only the gradients asked for are computed", "[ops][conv]") {
  Tensor x = Tensor::full({2, 3, 5, 5}, 1.0, DType::f64);  // an image: no gradient wanted
  Tensor w = rand_leaf({4, 3, 3, 3}, 21);
  Tensor y = conv2d(x, w, Tensor(), params(1, 1, 1, 1));
  run_backward(y, Tensor::full(y.shape(), 1.0, DType::f64));
  REQUIRE_FALSE(x.grad().defined());
  REQUIRE(w.grad().defined());
  REQUIRE(w.grad().shape() == w.shape());

  // bf16 on the CPU passes the float kernel no weight when no input gradient is wanted (the stem); a kernel cropped
  // to its live taps (2x2 input, stride 2: output (0, 0) reads rows and columns 1..2 of the kernel only) must not
  // read it.
  Tensor xb = Tensor::full({2, 3, 2, 2}, 1.0, DType::bf16);
  Tensor wb = rand_leaf({4, 3, 3, 3}, 22, DType::bf16);
  Tensor yb = conv2d(xb, wb, Tensor(), params(2, 2, 1, 1));
  run_backward(yb, Tensor::full(yb.shape(), 1.0, DType::bf16));
  REQUIRE_FALSE(xb.grad().defined());
  REQUIRE(wb.grad().shape() == wb.shape());
  const std::vector<double> gw = wb.grad().to_vector();  // x and gy all ones: 2 images per live tap, 0 elsewhere
  for (size_t i = 0; i < gw.size(); ++i) {
    const size_t a = (i / 3) % 3, b = i % 3;
    INFO("tap " << a << ", " << b);
    CHECK(gw[i] == (a > 0 && b > 0 ? 2.0 : 0.0));
  }
}

TEST_CASE("conv2d: bad arguments name the op and the shapes", "[ops][conv]") {
  Tensor x = Tensor::zeros({2, 3, 8, 8});
  Tensor w = Tensor::zeros({64, 1, 7, 7});
  REQUIRE_THROWS_WITH(
      conv2d(x, w, Tensor(), Conv2dParams{}),
      Catch::Contains("conv2d: input has 3 channels but weight expects 1") && Catch::Contains("weight [64, 1, 7, 7]"));
  REQUIRE_THROWS_WITH(conv2d(Tensor::zeros({3, 8, 8}), Tensor::zeros({4, 3, 3, 3}), Tensor(), Conv2dParams{}),
                      Catch::Contains("conv2d: expected input (N, C, H, W) with 4 dimensions, got [3, 8, 8]"));
  REQUIRE_THROWS_WITH(conv2d(x, Tensor::zeros({4, 3, 3}), Tensor(), Conv2dParams{}),
                      Catch::Contains("conv2d: expected weight (OC, C, KH, KW) with 4 dimensions, got [4, 3, 3]"));
  REQUIRE_THROWS_WITH(conv2d(x, Tensor::zeros({4, 3, 3, 3}), Tensor::zeros({5}), Conv2dParams{}),
                      Catch::Contains("conv2d: bias [5] must have one element per output channel, [4]"));
  REQUIRE_THROWS_WITH(conv2d(x, Tensor::zeros({4, 3, 3, 3}, DType::f64), Tensor(), Conv2dParams{}),
                      Catch::Contains("conv2d: weight is float64 but input is float32"));
  REQUIRE_THROWS_WITH(conv2d(x, Tensor::zeros({4, 3, 9, 9}), Tensor(), Conv2dParams{}),
                      Catch::Contains("conv2d: kernel 9x9 is larger than the padded input 8x8"));
  REQUIRE_NOTHROW(conv2d(x, Tensor::zeros({4, 3, 9, 9}), Tensor(), params(1, 1, 1, 1)));
  REQUIRE_THROWS_WITH(conv2d(x, Tensor::zeros({4, 3, 3, 3}), Tensor(), params(0, 1, 0, 0)),
                      Catch::Contains("conv2d: stride must be >= 1 and padding >= 0, got stride 0x1"));
  REQUIRE_THROWS_WITH(conv2d(x, Tensor::zeros({4, 3, 3, 3}), Tensor(), params(1, 1, -1, 0)),
                      Catch::Contains("padding -1x0"));
  REQUIRE_THROWS_WITH(conv2d(Tensor::zeros({0, 3, 8, 8}), Tensor::zeros({4, 3, 3, 3}), Tensor(), Conv2dParams{}),
                      Catch::Contains("conv2d: every dimension of input and weight must be positive"));
}

TEST_CASE("conv2d: engine switch", "[ops][conv]") {
  REQUIRE(conv_engine() == ConvEngine::native);
  REQUIRE(parse_conv_engine("fastest") == ConvEngine::fastest);
  REQUIRE(parse_conv_engine("cudnn") == ConvEngine::cudnn);
  REQUIRE_THROWS_WITH(parse_conv_engine("winograd"), Catch::Contains("expected native, cudnn or fastest"));
  if (cudnn_compiled()) {
    set_conv_engine(ConvEngine::cudnn);
    REQUIRE(conv_engine() == ConvEngine::cudnn);
    // CPU tensors always take the native path, whatever the engine.
    Tensor x = Tensor::from_vector({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3}, DType::f64);
    Tensor w = Tensor::from_vector({1, 2, 3, 4}, {1, 1, 2, 2}, DType::f64);
    std::vector<double> y = conv2d(x, w, Tensor(), Conv2dParams{}).to_vector();
    set_conv_engine(ConvEngine::native);
    REQUIRE(y == std::vector<double>{37, 47, 67, 77});
  } else {
    REQUIRE_THROWS_WITH(set_conv_engine(ConvEngine::cudnn), Catch::Contains("built without cuDNN"));
    REQUIRE_THROWS_WITH(set_conv_engine(ConvEngine::fastest), Catch::Contains("built without cuDNN"));
    REQUIRE(conv_engine() == ConvEngine::native);
  }
}
