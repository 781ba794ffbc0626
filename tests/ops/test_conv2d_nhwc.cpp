// Channels-last (NHWC) convolution kernels against the NCHW ones: for the conv cases of tests/ops/conv_case.h the
// NHWC forward and backward (gx, gw, gb) of kernels::cpu, fed the permuted inputs, must give the NCHW results
// permuted, in float64, float32 and bf16; a batch over several im2col chunks; only the gradients asked for; and
// CUDA (native and cuDNN) NHWC against the CPU NHWC, skipping visibly without a device.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/tensor.h"
#include "kernels/conv.h"
#include "tests/compare.h"
#include "tests/gradcheck.h"
#include "tests/ops/conv_case.h"
#include "tests/ops/layout_host.h"

#if ENGINE_HAVE_CUDA
#include "kernels/cuda/runtime.h"
#endif

using engine::Device;
using engine::DType;
using engine::Tensor;
using kernels::Conv2dShape;
using kernels::Layout;
using testing::ConvCase;
using testing::describe;
using testing::params;
using testing::to_nchw;
using testing::to_nhwc;

namespace {

Conv2dShape shape_of(const ConvCase& k, Layout layout) {
  Conv2dShape s;
  s.n = k.n, s.c = k.c, s.h = k.h, s.w = k.w, s.oc = k.oc, s.kh = k.kh, s.kw = k.kw;
  s.stride_h = k.p.stride_h, s.stride_w = k.p.stride_w, s.pad_h = k.p.pad_h, s.pad_w = k.p.pad_w;
  s.oh = (k.h + 2 * k.p.pad_h - k.kh) / k.p.stride_h + 1;
  s.ow = (k.w + 2 * k.p.pad_w - k.kw) / k.p.stride_w + 1;
  s.layout = layout;
  return s;
}

std::vector<double> uniform(int64_t n, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> d(-1.0, 1.0);
  std::vector<double> v(n);
  for (double& e : v) e = d(gen);
  return v;
}

// The four inputs of one case, drawn in NCHW order and permuted for an NHWC run (the weight too, to [OC, KH, KW,
// C]), so both layouts see the same values; they are rounded to the dtype when they become tensors.
struct Inputs {
  std::vector<double> x, w, b, gy;
};
Inputs inputs_of(const ConvCase& k, uint64_t seed, Layout layout = Layout::nchw) {
  const Conv2dShape s = shape_of(k, Layout::nchw);
  Inputs in;
  in.x = uniform(s.n * s.c * s.h * s.w, seed);
  in.w = uniform(s.oc * s.ckk(), seed + 1);
  if (k.bias) in.b = uniform(s.oc, seed + 2);
  in.gy = uniform(s.n * s.oc * s.oh * s.ow, seed + 3);
  if (layout == Layout::nhwc) {
    in.x = to_nhwc(in.x, s.n, s.c, s.h, s.w);
    in.w = to_nhwc(in.w, s.oc, s.c, s.kh, s.kw);
    in.gy = to_nhwc(in.gy, s.n, s.oc, s.oh, s.ow);
  }
  return in;
}

enum class Impl { cpu, cuda, cudnn };
const char* impl_name(Impl i) { return i == Impl::cpu ? "cpu" : i == Impl::cuda ? "cuda" : "cudnn"; }

struct Outputs {
  std::vector<double> y, gx, gw, gb, gw_alone, gx_alone;
};

Tensor flat(const std::vector<double>& v, DType dt, Device d) {
  return Tensor::from_vector(v, {int64_t(v.size())}, dt, d);
}

template <class T>
void forward(Impl impl, const Conv2dShape& s, const T* x, const T* w, const T* b, T* y) {
  switch (impl) {
    case Impl::cpu:
      return kernels::cpu::conv2d_forward<T>(s, x, w, b, y);
#if ENGINE_HAVE_CUDA
    case Impl::cuda:
      return kernels::cuda::conv2d_forward<T>(s, x, w, b, y);
#endif
#if ENGINE_HAVE_CUDNN
    case Impl::cudnn:
      return kernels::cudnn::conv2d_forward<T>(s, x, w, b, y);
#endif
    default:
      FAIL("conv implementation " << impl_name(impl) << " is not in this build");
  }
}
template <class T>
void backward(Impl impl, const Conv2dShape& s, const T* x, const T* w, const T* gy, T* gx, T* gw, T* gb) {
  switch (impl) {
    case Impl::cpu:
      return kernels::cpu::conv2d_backward<T>(s, x, w, gy, gx, gw, gb);
#if ENGINE_HAVE_CUDA
    case Impl::cuda:
      return kernels::cuda::conv2d_backward<T>(s, x, w, gy, gx, gw, gb);
#endif
#if ENGINE_HAVE_CUDNN
    case Impl::cudnn:
      return kernels::cudnn::conv2d_backward<T>(s, x, w, gy, gx, gw, gb);
#endif
    default:
      FAIL("conv implementation " << impl_name(impl) << " is not in this build");
  }
}

// Forward and the full backward of one shape; then gw alone (no gx, no weight passed: it must not be read) and gx
// alone. Outputs come back in the layout they were computed in.
template <class T>
Outputs run(Impl impl, const Conv2dShape& s, const Inputs& in, Device dev) {
  const DType dt = engine::dtype_of<T>();
  Tensor x = flat(in.x, dt, dev), w = flat(in.w, dt, dev), gy = flat(in.gy, dt, dev);
  Tensor b = in.b.empty() ? Tensor() : flat(in.b, dt, dev);
  const int64_t ny = s.n * s.oc * s.oh * s.ow, nx = s.n * s.c * s.h * s.w, nw = s.oc * s.ckk();
  Tensor y = Tensor::empty({ny}, dt, dev), gx = Tensor::empty({nx}, dt, dev), gw = Tensor::empty({nw}, dt, dev);
  Tensor gb = Tensor::empty({s.oc}, dt, dev);
  const T* pb = b.defined() ? b.data<T>() : nullptr;
  Outputs o;
  forward<T>(impl, s, x.data<T>(), w.data<T>(), pb, y.data<T>());
  o.y = y.to_vector();
  backward<T>(impl, s, x.data<T>(), w.data<T>(), gy.data<T>(), gx.data<T>(), gw.data<T>(),
              b.defined() ? gb.data<T>() : nullptr);
  o.gx = gx.to_vector(), o.gw = gw.to_vector();
  if (b.defined()) o.gb = gb.to_vector();
  Tensor gw2 = Tensor::full({nw}, 1e30, dt, dev), gx2 = Tensor::full({nx}, 1e30, dt, dev);
  backward<T>(impl, s, x.data<T>(), nullptr, gy.data<T>(), nullptr, gw2.data<T>(), nullptr);
  backward<T>(impl, s, x.data<T>(), w.data<T>(), gy.data<T>(), gx2.data<T>(), nullptr, nullptr);
  o.gw_alone = gw2.to_vector(), o.gx_alone = gx2.to_vector();
  return o;
}

// Tolerance per element: |got - want| <= tol(K) (1 + |want|), K the length of the longest sum behind the value.
// Both sides round a K-term sum (at most K u sum|terms|, in practice about sqrt(K) u |terms|_2, which is K u for
// these unit-scale values), and the two orders of summation differ; 8 K u leaves a factor 8 for that and for the
// bias added after the sum (the formula of tests/ops/op_table.h). bf16: both compute in float (float's u) and each
// rounds its result to bf16 once, u = 2^-8, hence 2 * 2^-8 more.
double tol_of(DType dt, double k) {
  if (dt == DType::bf16) return 2 * 0x1p-8 + 8 * k * 0x1p-24;
  return 8 * k * (dt == DType::f64 ? 0x1p-53 : 0x1p-24);
}

testing::Comparison compare(const std::vector<double>& got, const std::vector<double>& want, double tol) {
  return testing::compare(got, want, [&](size_t i) { return tol * (1 + std::abs(want[i])); });
}

// NHWC's outputs, permuted to NCHW, against NCHW's, both on the CPU.
template <class T>
void check_layouts(const ConvCase& k, uint64_t seed) {
  const DType dt = engine::dtype_of<T>();
  INFO(describe(k) << ", " << engine::dtype_name(dt));
  const Conv2dShape a = shape_of(k, Layout::nchw), b = shape_of(k, Layout::nhwc);
  const Inputs in = inputs_of(k, seed), t = inputs_of(k, seed, Layout::nhwc);
  const Outputs ref = run<T>(Impl::cpu, a, in, Device::cpu()), got = run<T>(Impl::cpu, b, t, Device::cpu());
  const double kf = double(a.ckk() + 1), kx = double(a.oc * a.kh * a.kw), kw = double(a.n * a.oh * a.ow);
  CHECK_OK(compare(to_nchw(got.y, a.n, a.oc, a.oh, a.ow), ref.y, tol_of(dt, kf)));
  CHECK_OK(compare(to_nchw(got.gx, a.n, a.c, a.h, a.w), ref.gx, tol_of(dt, kx)));
  CHECK_OK(compare(to_nchw(got.gw, a.oc, a.c, a.kh, a.kw), ref.gw, tol_of(dt, kw)));
  if (k.bias) CHECK_OK(compare(got.gb, ref.gb, tol_of(dt, kw)));
  // Asking for one gradient gives exactly what the full call gave.
  CHECK_OK(compare(got.gw_alone, got.gw, 0.0));
  CHECK_OK(compare(got.gx_alone, got.gx, 0.0));
}

// The cases of tests/ops/test_conv2d.cpp's direct-convolution sweep, and the ResNet shapes at small size.
const std::vector<ConvCase>& cases() {
  static const std::vector<ConvCase> list = {
      {1, 1, 5, 5, 1, 3, 3, params(1, 1, 0, 0), false},
      {3, 2, 7, 9, 4, 3, 3, params(1, 1, 1, 1), true},     // 3x3 pad 1 stride 1
      {3, 6, 10, 10, 5, 3, 3, params(1, 1, 1, 1), false},  // ... no bias
      {3, 4, 17, 19, 6, 3, 3, params(2, 2, 1, 1), true},   // 3x3 pad 1 stride 2
      {3, 3, 8, 8, 5, 1, 1, params(1, 1, 0, 0), true},     // pointwise: one GEMM over the batch
      {1, 4, 6, 6, 3, 1, 1, params(1, 1, 0, 0), false},    // pointwise, one image
      {3, 16, 8, 8, 8, 1, 1, params(1, 1, 0, 0), false},   // pointwise, more channels
      {2, 3, 9, 7, 2, 1, 1, params(2, 2, 0, 0), true},     // strided 1x1 (the ResNet shortcut): a gather
      {4, 8, 9, 7, 16, 1, 1, params(2, 2, 0, 0), false},
      {2, 3, 11, 13, 4, 7, 7, params(2, 2, 3, 3), true},   // 7x7 stride 2 pad 3 (the stem)
      {2, 1, 28, 28, 8, 7, 7, params(2, 2, 3, 3), false},  // ... on one channel, as Fashion-MNIST's
      {3, 2, 7, 9, 3, 3, 5, params(2, 1, 1, 2), true},     // asymmetric kernel, stride and padding
      {2, 2, 5, 6, 2, 2, 3, params(3, 2, 0, 1), false},
      {1, 1, 4, 4, 2, 3, 3, params(1, 1, 3, 3), true},  // padding as large as the kernel
      {2, 2, 3, 3, 2, 5, 5, params(1, 1, 3, 3), true},  // pad 3 > tap reach
      // Cropped to the live taps (kernels::live_taps), and the tiny maps of ResNet at 28 px:
      {3, 4, 1, 1, 5, 3, 3, params(1, 1, 1, 1), true},   // 1x1 input: the centre tap, a fully connected layer
      {1, 4, 1, 1, 5, 3, 3, params(1, 1, 1, 1), false},  // ... one image
      {3, 2, 2, 2, 3, 3, 3, params(2, 2, 1, 1), true},   // 2x2 input, stride 2: rows/cols 1..2
      {2, 2, 1, 5, 3, 3, 3, params(2, 1, 2, 1), true},   // 1-row input: rows 0 and 2 live
      {4, 3, 1, 2, 4, 3, 3, params(1, 1, 1, 1), true},   // 1x2: rows cropped to the centre
      {3, 4, 1, 70, 5, 3, 3, params(1, 1, 1, 1), true},  // cropped to kernel row 1, a long row
      {2, 2, 1, 1, 3, 1, 1, params(4, 4, 3, 3), true},   // no live tap: the output is the bias
      {2, 4, 2, 2, 3, 3, 3, params(1, 1, 1, 1), false},  // 2x2 pad 1 (NCHW: dense GEMM; NHWC: im2col)
      {3, 5, 4, 4, 6, 3, 3, params(1, 1, 1, 1), true},   // 4x4
      {3, 3, 7, 7, 4, 3, 3, params(2, 2, 1, 1), true},   // 7x7 stride 2 -> 4x4
  };
  return list;
}

}  // namespace

TEST_CASE("conv2d nhwc: forward and backward match NCHW, float64, float32 and bf16", "[conv][nhwc]") {
  uint64_t seed = 1000;
  for (const ConvCase& k : cases()) {
    check_layouts<double>(k, seed);
    check_layouts<float>(k, seed);
    check_layouts<kernels::bf16>(k, seed);
    seed += 10;
  }
}

TEST_CASE("conv2d nhwc: a batch over several im2col chunks matches NCHW", "[conv][nhwc]") {
  // One image of the 3x3 case needs 27 * 128 * 128 = 442k column elements, so the 16M budget
  // (kCpuConvChunkElems) takes 37 images: 40 run as chunks of 37 and 3, and gW accumulates over both. The 7x7
  // stride-2 case: 147 * 64 * 64 = 602k per image, chunks of 27 and 13.
  const std::vector<ConvCase> big = {{40, 3, 128, 128, 2, 3, 3, params(1, 1, 1, 1), true},
                                     {40, 3, 128, 128, 2, 7, 7, params(2, 2, 3, 3), false}};
  for (const ConvCase& k : big) {
    const Conv2dShape s = shape_of(k, Layout::nhwc);
    REQUIRE(kernels::conv_chunk_images(s, kernels::kCpuConvChunkElems) < s.n);
    check_layouts<double>(k, 7);
    check_layouts<float>(k, 8);
    check_layouts<kernels::bf16>(k, 9);  // widened to float first, then the same chunks
  }
}

TEST_CASE("conv2d nhwc: im2col and col2im by hand", "[conv][nhwc]") {
  // One 2x3 image of two channels, pixel (h, w) channel c = 10*h + w + 100*c; 2x2 kernel, stride 1, pad 0:
  // outputs (0, 0) and (0, 1), each row of col the 2x2 window in (i, j, c) order.
  Conv2dShape s = shape_of({1, 2, 2, 3, 1, 2, 2, params(1, 1, 0, 0), false}, Layout::nhwc);
  std::vector<double> x;
  for (int h = 0; h < 2; ++h)
    for (int w = 0; w < 3; ++w)
      for (int c = 0; c < 2; ++c) x.push_back(10 * h + w + 100 * c);
  std::vector<double> col(2 * 8);
  kernels::cpu::im2col<double>(s, x.data(), 1, col.data());
  REQUIRE(col == std::vector<double>{0, 100, 1, 101, 10, 110, 11, 111, 1, 101, 2, 102, 11, 111, 12, 112});
  // col2im of all ones counts the windows covering each pixel: columns 0 and 2 once, column 1 twice.
  std::vector<double> ones(16, 1.0), gx(12, -1.0);
  kernels::cpu::col2im<double>(s, ones.data(), 1, gx.data());
  REQUIRE(gx == std::vector<double>{1, 1, 2, 2, 1, 1, 1, 1, 2, 2, 1, 1});
}

#if ENGINE_HAVE_CUDA
namespace {
struct Tf32Off {
  bool was = kernels::cuda::allow_tf32();
  Tf32Off() { kernels::cuda::set_allow_tf32(false); }
  ~Tf32Off() { kernels::cuda::set_allow_tf32(was); }
};

// A GPU implementation's results against the CPU's, in NHWC (or NCHW where named). float64 and float32 (TF32
// off): both sides' round-off, tol_of. bf16: each device rounds float sums that differ in their last bits, so a
// value near a rounding boundary lands one bf16 ulp (2^-7 relative) apart, twice where two roundings chain (CUDA
// adds the bias in a second pass): 2^-6, plus both sides' float round-off.
template <class T>
void check_device(Impl impl, const ConvCase& k, uint64_t seed, Layout layout = Layout::nhwc) {
  const DType dt = engine::dtype_of<T>();
  const bool cl = layout == Layout::nhwc;
  INFO(describe(k) << ", " << engine::dtype_name(dt) << ", " << impl_name(impl) << (cl ? " NHWC" : " NCHW")
                   << " against the CPU");
  const Conv2dShape s = shape_of(k, layout);
  const Inputs in = inputs_of(k, seed, layout);
  const Outputs ref = run<T>(Impl::cpu, s, in, Device::cpu()), got = run<T>(impl, s, in, Device::cuda());
  auto tol = [&](double terms) { return dt == DType::bf16 ? 0x1p-6 + 2 * 8 * terms * 0x1p-24 : 2 * tol_of(dt, terms); };
  const double kf = double(s.ckk() + 1), kx = double(s.oc * s.kh * s.kw), kw = double(s.n * s.oh * s.ow);
  CHECK_OK(compare(got.y, ref.y, tol(kf)));
  // bf16 gx on our kernels: the backward-data GEMM rounds each column value (a sum over the output channels) to
  // bf16 before col2im adds up to KH*KW of them in float, where the CPU rounds once. Each of those roundings is off
  // by at most u = 2^-8 of its value, and a pixel's column values add up in magnitude to at most the backward-data
  // of |w| and |gy| (run here on the CPU in double): u times that more, per element. A host replica of these
  // roundings put the stem-like case 1.14 times over the bound without it.
  std::vector<double> gx_extra(ref.gx.size(), 0.0);
  if (dt == DType::bf16 && impl == Impl::cuda) {
    Inputs a = in;
    for (double& v : a.w) v = std::abs(v);
    for (double& v : a.gy) v = std::abs(v);
    const std::vector<double> sum_abs = run<double>(Impl::cpu, s, a, Device::cpu()).gx;
    for (size_t i = 0; i < sum_abs.size(); ++i) gx_extra[i] = 0x1p-8 * sum_abs[i];
  }
  const auto compare_gx = [&](const std::vector<double>& g) {
    const double t = tol(kx);
    return testing::compare(g, ref.gx, [&](size_t i) { return t * (1 + std::abs(ref.gx[i])) + gx_extra[i]; });
  };
  CHECK_OK(compare_gx(got.gx));
  CHECK_OK(compare(got.gw, ref.gw, tol(kw)));
  if (k.bias) CHECK_OK(compare(got.gb, ref.gb, tol(kw)));
  CHECK_OK(compare(got.gw_alone, ref.gw, tol(kw)));
  CHECK_OK(compare_gx(got.gx_alone));
}

double rms(const std::vector<double>& v) {
  double ss = 0;
  for (double e : v) ss += e * e;
  return std::sqrt(ss / double(v.size()));
}

// Every case of cases() on our CUDA kernels against the CPU, in each dtype.
void check_cases(uint64_t seed, Layout layout) {
  for (const ConvCase& k : cases()) {
    check_device<double>(Impl::cuda, k, seed, layout);
    check_device<float>(Impl::cuda, k, seed, layout);
    check_device<kernels::bf16>(Impl::cuda, k, seed, layout);
    seed += 10;
  }
}

// The float32 batch over several CUDA chunks: the worst-case bound above, K u with K = N*OH*OW = 2.6M terms,
// exceeds 1 and would pass a gW of zero, so here the form of the bf16 chunk test below: the two devices' sums of
// the same products differ by round-off of about sqrt(K) u = 1e-4 of the terms' norm, a tenth of the bound's
// 2^-10 of the output's rms (absolute) and relative; a chunk missed or summed twice is off by O(1).
void check_chunks_f32(const ConvCase& k, uint64_t seed) {
  INFO(describe(k) << ", float32, CUDA NHWC over several chunks against the CPU");
  const Conv2dShape s = shape_of(k, Layout::nhwc);
  const Inputs in = inputs_of(k, seed, Layout::nhwc);
  const Outputs ref = run<float>(Impl::cpu, s, in, Device::cpu()), got = run<float>(Impl::cuda, s, in, Device::cuda());
  const double r = 0x1p-10;
  REQUIRE(rms(ref.gw) > 0);
  CHECK_OK(testing::compare_close(got.y, ref.y, r * rms(ref.y), r));
  CHECK_OK(testing::compare_close(got.gx, ref.gx, r * rms(ref.gx), r));
  CHECK_OK(testing::compare_close(got.gw, ref.gw, r * rms(ref.gw), r));
  CHECK_OK(testing::compare_close(got.gw_alone, ref.gw, r * rms(ref.gw), r));
  CHECK_OK(testing::compare_close(got.gx_alone, ref.gx, r * rms(ref.gx), r));
  if (k.bias) CHECK_OK(testing::compare_close(got.gb, ref.gb, r * rms(ref.gb), r));
}
}  // namespace
#endif

TEST_CASE("conv2d nhwc cuda: forward and backward match the CPU NHWC kernels", "[conv][nhwc][cuda]") {
  SKIP_WITHOUT_CUDA();
#if ENGINE_HAVE_CUDA
  Tf32Off tf32;
  check_cases(2000, Layout::nhwc);
  // A batch over several CUDA chunks (64M column elements: 27 * 256 * 256 = 1.77M per image, 37 per chunk).
  check_chunks_f32({40, 3, 256, 256, 4, 3, 3, params(1, 1, 1, 1), true}, 7);
#endif
}

// The same kernel-level calls in NCHW: gW alone with no weight passed reaches the live-tap crop too (the 1x1 and
// 2x2 inputs), which must then not read the weight.
TEST_CASE("conv2d cuda nchw: forward and backward match the CPU, gW alone without the weight", "[conv][cuda]") {
  SKIP_WITHOUT_CUDA();
#if ENGINE_HAVE_CUDA
  Tf32Off tf32;
  check_cases(2500, Layout::nchw);
#endif
}

TEST_CASE("conv2d cuda bf16: a weight gradient over several chunks matches the CPU's, NCHW and NHWC",
          "[conv][nhwc][cuda][bf16]") {
  SKIP_WITHOUT_CUDA();
#if ENGINE_HAVE_CUDA
  Tf32Off tf32;
  // Two CUDA chunks (37 + 3 images, 1.77M column elements each): CUDA sums gW over them in a float buffer and
  // rounds once (conv_kernels::WeightGradSum), the CPU widens to float first. Both round a float sum of the same
  // exact bf16 products, in different orders: about sqrt(K) u = 1e-4 of the terms' norm for K = 2.6M, far below
  // a bf16 ulp, so the results are the same bf16 value or neighbours, 2^-7 relative; the absolute 2^-7 of the
  // gradient's rms covers values near zero. (The worst-case K u bound of check_device exceeds 1 here and would
  // pass anything.) A sum left in the buffer or written to the wrong place fails by O(1).
  const ConvCase k{40, 3, 256, 256, 4, 3, 3, params(1, 1, 1, 1), true};
  for (Layout layout : {Layout::nchw, Layout::nhwc}) {
    INFO(describe(k) << (layout == Layout::nhwc ? ", NHWC" : ", NCHW"));
    const Conv2dShape s = shape_of(k, layout);
    const Inputs in = inputs_of(k, 11, layout);
    const Outputs ref = run<kernels::bf16>(Impl::cpu, s, in, Device::cpu());
    const Outputs got = run<kernels::bf16>(Impl::cuda, s, in, Device::cuda());
    const double r = rms(ref.gw);
    REQUIRE(r > 0);
    CHECK_OK(testing::compare_close(got.gw, ref.gw, 0x1p-7 * r, 0x1p-7));
    CHECK_OK(testing::compare_close(got.gw_alone, ref.gw, 0x1p-7 * r, 0x1p-7));
  }
#endif
}

TEST_CASE("conv2d nhwc cudnn: CUDNN_TENSOR_NHWC matches the CPU NHWC kernels", "[conv][nhwc][cuda][cudnn]") {
  SKIP_WITHOUT_CUDA();
#if ENGINE_HAVE_CUDNN
  Tf32Off tf32;
  uint64_t seed = 3000;
  // float32 and bf16: the types cuDNN's NHWC kernels are for (float64 NHWC is not among them).
  for (const ConvCase& k : cases()) {
    check_device<float>(Impl::cudnn, k, seed);
    check_device<kernels::bf16>(Impl::cudnn, k, seed);
    seed += 10;
  }
#else
  WARN("SKIPPED: built without cuDNN");
#endif
}
