// Channels-last (NHWC) forms of the non-convolution layer kernels against their NCHW forms: batch norm (train and
// eval; plain, fused ReLU, fused residual with and without ReLU; forward, backward and the running statistics),
// max pooling (ties included), adaptive average pooling, the option-A shortcut and the NCHW <-> NHWC permute.
// Each NHWC kernel of kernels::cpu, fed the permuted inputs, must give the NCHW kernel's results permuted, in
// float64, float32 and bf16: exactly where the ops only move values or add the same terms in the same order
// (pooling, shortcut, permute), within a round-off bound where sums are reordered (batch norm). Then the CUDA
// NHWC kernels against the CPU NHWC kernels, skipping visibly without a device.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/tensor.h"
#include "kernels/batch_norm.h"
#include "kernels/layout.h"
#include "kernels/pool.h"
#include "kernels/shortcut.h"
#include "tests/compare.h"
#include "tests/gradcheck.h"
#include "tests/ops/layout_host.h"

using engine::Device;
using engine::DType;
using engine::Tensor;
using kernels::Layout;
using testing::to_nchw;
using testing::to_nhwc;

namespace {

std::vector<double> uniform(int64_t n, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> d(lo, hi);
  std::vector<double> v(n);
  for (double& e : v) e = d(gen);
  return v;
}

enum class Impl { cpu, cuda };
Device device_of(Impl i) { return i == Impl::cpu ? Device::cpu() : Device::cuda(); }

Tensor flat(const std::vector<double>& v, DType dt, Device d) {
  return Tensor::from_vector(v, {int64_t(v.size())}, dt, d);
}

testing::Comparison compare(const std::vector<double>& got, const std::vector<double>& want, double tol) {
  return testing::compare(got, want, [&](size_t i) { return tol * (1 + std::abs(want[i])); });
}

// ---- batch norm ----

struct BnCase {
  int64_t n, c, h, w;
};
std::string describe(const BnCase& k) {
  std::ostringstream o;
  o << "N=" << k.n << " C=" << k.c << " H=" << k.h << " W=" << k.w;
  return o.str();
}

enum class BnMode { plain, relu, residual, residual_relu };
const char* mode_name(BnMode m) {
  return m == BnMode::plain      ? "plain"
         : m == BnMode::relu     ? "relu"
         : m == BnMode::residual ? "residual"
                                 : "residual+relu";
}

// One case's inputs in NCHW order (the NHWC run permutes the activations; the per-channel ones are shared).
struct BnInputs {
  std::vector<double> x, r, gy, gamma, beta, rm, rv;
};
BnInputs bn_inputs(const BnCase& k, uint64_t seed) {
  const int64_t e = k.n * k.c * k.h * k.w;
  BnInputs in;
  in.x = uniform(e, seed, -1.0, 3.0);  // a mean away from 0, as real activations
  in.r = uniform(e, seed + 1);
  in.gy = uniform(e, seed + 2);
  in.gamma = uniform(k.c, seed + 3, 0.5, 1.5);
  in.beta = uniform(k.c, seed + 4);
  in.rm = uniform(k.c, seed + 5);
  in.rv = uniform(k.c, seed + 6, 0.5, 2.0);
  return in;
}

struct BnOutputs {
  std::vector<double> y, mean, invstd, rm, rv, gx, dgamma, dbeta, gr;
};

template <class T>
void bn_forward(Impl impl, bool training, const T* x, const kernels::compute_t<T>* g, const kernels::compute_t<T>* b,
                T* y, kernels::compute_t<T>* sm, kernels::compute_t<T>* si, kernels::compute_t<T>* rm,
                kernels::compute_t<T>* rv, const kernels::BatchNormShape& s, bool relu, const T* r) {
  if (impl == Impl::cpu) {
    if (training) return kernels::cpu::batch_norm_forward_train<T>(x, g, b, y, sm, si, rm, rv, s, 0.1, 1e-5, relu, r);
    return kernels::cpu::batch_norm_forward_eval<T>(x, g, b, rm, rv, y, sm, si, s, 1e-5, relu, r);
  }
#if ENGINE_HAVE_CUDA
  if (training) return kernels::cuda::batch_norm_forward_train<T>(x, g, b, y, sm, si, rm, rv, s, 0.1, 1e-5, relu, r);
  return kernels::cuda::batch_norm_forward_eval<T>(x, g, b, rm, rv, y, sm, si, s, 1e-5, relu, r);
#else
  FAIL("no CUDA in this build");
#endif
}

template <class T>
void bn_backward(Impl impl, const T* x, const T* gy, const kernels::compute_t<T>* g, const kernels::compute_t<T>* sm,
                 const kernels::compute_t<T>* si, T* gx, kernels::compute_t<T>* dgamma, kernels::compute_t<T>* dbeta,
                 const kernels::BatchNormShape& s, bool training, bool relu, const kernels::compute_t<T>* beta,
                 const T* y, T* gr) {
  if (impl == Impl::cpu)
    return kernels::cpu::batch_norm_backward<T>(x, gy, g, sm, si, gx, dgamma, dbeta, s, training, relu, beta, y, gr);
#if ENGINE_HAVE_CUDA
  return kernels::cuda::batch_norm_backward<T>(x, gy, g, sm, si, gx, dgamma, dbeta, s, training, relu, beta, y, gr);
#else
  FAIL("no CUDA in this build");
#endif
}

// Forward then backward of one mode; activations in and out in the layout of `layout`.
template <class T>
BnOutputs bn_run(Impl impl, const BnCase& k, Layout layout, const BnInputs& in, BnMode mode, bool training,
                 bool affine) {
  using C = kernels::compute_t<T>;
  const DType dt = engine::dtype_of<T>(), cdt = engine::dtype_of<C>();
  const Device dev = device_of(impl);
  kernels::BatchNormShape s;
  s.n = k.n, s.c = k.c, s.hw = k.h * k.w, s.layout = layout;
  const bool relu = mode == BnMode::relu || mode == BnMode::residual_relu;
  const bool residual = mode == BnMode::residual || mode == BnMode::residual_relu;
  Tensor x = flat(in.x, dt, dev), r = flat(in.r, dt, dev), gy = flat(in.gy, dt, dev);
  Tensor gamma = flat(in.gamma, cdt, dev), beta = flat(in.beta, cdt, dev);
  Tensor rm = flat(in.rm, cdt, dev), rv = flat(in.rv, cdt, dev);
  const int64_t e = int64_t(in.x.size());
  Tensor y = Tensor::empty({e}, dt, dev), gx = Tensor::empty({e}, dt, dev), gr = Tensor::empty({e}, dt, dev);
  Tensor sm = Tensor::empty({k.c}, cdt, dev), si = Tensor::empty({k.c}, cdt, dev);
  Tensor dgamma = Tensor::empty({k.c}, cdt, dev), dbeta = Tensor::empty({k.c}, cdt, dev);
  const C* pg = affine ? gamma.data<C>() : nullptr;
  const C* pb = affine ? beta.data<C>() : nullptr;
  bn_forward<T>(impl, training, x.data<T>(), pg, pb, y.data<T>(), sm.data<C>(), si.data<C>(), rm.data<C>(),
                rv.data<C>(), s, relu, residual ? r.data<T>() : nullptr);
  bn_backward<T>(impl, x.data<T>(), gy.data<T>(), pg, sm.data<C>(), si.data<C>(), gx.data<T>(),
                 affine ? dgamma.data<C>() : nullptr, dbeta.data<C>(), s, training, relu, pb,
                 residual ? y.data<T>() : nullptr, residual ? gr.data<T>() : nullptr);
  BnOutputs o;
  o.y = y.to_vector(), o.mean = sm.to_vector(), o.invstd = si.to_vector();
  o.rm = rm.to_vector(), o.rv = rv.to_vector(), o.gx = gx.to_vector(), o.dbeta = dbeta.to_vector();
  if (affine) o.dgamma = dgamma.to_vector();
  if (residual) o.gr = gr.to_vector();
  return o;
}

// Tolerance per element: |got - want| <= tol(K) (1 + |want|), K = N*H*W, the length of the per-channel sums.
// Both layouts sum the same K terms in double in different orders (at most K u sum|terms|, in practice about
// sqrt(K) u |terms|_2 = K u for these unit-scale values; 8 K u leaves a factor 8 for the statistics feeding the
// element-wise passes): the whole bound in float64. float32 and bf16 store the statistics and the parameters'
// gradients in float and chain up to two roundings to float per value (a statistic, then the value computed from
// it): 4 u_f32 more; bf16 rounds each stored activation once more on each side: 2 * 2^-8 more.
double bn_tol(DType dt, double k) {
  const double sums = 8 * k * 0x1p-53;
  if (dt == DType::f64) return sums;
  if (dt == DType::f32) return sums + 4 * 0x1p-24;
  return sums + 4 * 0x1p-24 + 2 * 0x1p-8;
}

void check_bn(const BnOutputs& got_nhwc, const BnOutputs& ref, const BnCase& k, double tol, bool permute) {
  auto back = [&](const std::vector<double>& v) { return permute ? to_nchw(v, k.n, k.c, k.h, k.w) : v; };
  CHECK_OK(compare(back(got_nhwc.y), ref.y, tol));
  CHECK_OK(compare(got_nhwc.mean, ref.mean, tol));
  CHECK_OK(compare(got_nhwc.invstd, ref.invstd, tol));
  CHECK_OK(compare(got_nhwc.rm, ref.rm, tol));
  CHECK_OK(compare(got_nhwc.rv, ref.rv, tol));
  CHECK_OK(compare(back(got_nhwc.gx), ref.gx, tol));
  CHECK_OK(compare(got_nhwc.dgamma, ref.dgamma, tol));
  CHECK_OK(compare(got_nhwc.dbeta, ref.dbeta, tol));
  if (!ref.gr.empty()) CHECK_OK(compare(back(got_nhwc.gr), ref.gr, tol));
}

const std::vector<BnCase>& bn_cases() {
  static const std::vector<BnCase> list = {
      {1, 3, 5, 7},     // batch 1, odd plane
      {3, 5, 4, 4},     //
      {2, 33, 3, 3},    // C one past the CUDA tile of 32
      {4, 70, 1, 1},    // 1x1 planes (the last stage at 28 px), three tiles, the last one partial
      {2, 5, 1, 1},     // m = 2, the smallest batch training allows
      {5, 7, 9, 11},    // odd everything
      {16, 40, 16, 16}  // m = 4096: several row slices per channel on CUDA
  };
  return list;
}

template <class T>
void bn_layouts(const BnCase& k, uint64_t seed) {
  const DType dt = engine::dtype_of<T>();
  const BnInputs in = bn_inputs(k, seed);
  BnInputs t = in;
  t.x = to_nhwc(in.x, k.n, k.c, k.h, k.w);
  t.r = to_nhwc(in.r, k.n, k.c, k.h, k.w);
  t.gy = to_nhwc(in.gy, k.n, k.c, k.h, k.w);
  const double tol = bn_tol(dt, double(k.n * k.h * k.w));
  for (BnMode mode : {BnMode::plain, BnMode::relu, BnMode::residual, BnMode::residual_relu})
    for (bool training : {true, false})
      for (bool affine : {true, false}) {
        INFO(describe(k) << ", " << engine::dtype_name(dt) << ", " << mode_name(mode)
                         << (training ? ", train" : ", eval") << (affine ? "" : ", no affine"));
        const BnOutputs ref = bn_run<T>(Impl::cpu, k, Layout::nchw, in, mode, training, affine);
        const BnOutputs got = bn_run<T>(Impl::cpu, k, Layout::nhwc, t, mode, training, affine);
        check_bn(got, ref, k, tol, true);
      }
}

// ---- pooling ----

struct PoolCase {
  int64_t n, c, h, w;
  int kernel, stride, pad;
};
std::string describe(const PoolCase& k) {
  std::ostringstream o;
  o << "N=" << k.n << " C=" << k.c << " H=" << k.h << " W=" << k.w << " k=" << k.kernel << " s=" << k.stride
    << " p=" << k.pad;
  return o.str();
}
kernels::MaxPool2dShape max_shape(const PoolCase& k, Layout layout) {
  kernels::MaxPool2dShape s;
  s.planes = k.n * k.c, s.h = k.h, s.w = k.w;
  s.out_h = (k.h + 2 * k.pad - k.kernel) / k.stride + 1;
  s.out_w = (k.w + 2 * k.pad - k.kernel) / k.stride + 1;
  s.kernel_h = s.kernel_w = k.kernel, s.stride_h = s.stride_w = k.stride, s.pad_h = s.pad_w = k.pad;
  s.layout = layout, s.c = k.c;
  return s;
}

struct PoolOutputs {
  std::vector<double> y, argmax, gx;
};

template <class T>
PoolOutputs max_pool_run(Impl impl, const kernels::MaxPool2dShape& s, const std::vector<double>& x,
                         const std::vector<double>& gy) {
  const DType dt = engine::dtype_of<T>();
  const Device dev = device_of(impl);
  Tensor tx = flat(x, dt, dev), tgy = flat(gy, dt, dev);
  Tensor y = Tensor::empty({int64_t(gy.size())}, dt, dev), gx = Tensor::full({int64_t(x.size())}, 1e30, dt, dev);
  Tensor am = Tensor::empty({int64_t(gy.size())}, DType::i32, dev);
  if (impl == Impl::cpu) {
    kernels::cpu::max_pool2d_forward<T>(tx.data<T>(), y.data<T>(), am.data<int32_t>(), s);
    kernels::cpu::max_pool2d_backward<T>(tgy.data<T>(), am.data<int32_t>(), gx.data<T>(), s);
  } else {
#if ENGINE_HAVE_CUDA
    kernels::cuda::max_pool2d_forward<T>(tx.data<T>(), y.data<T>(), am.data<int32_t>(), s);
    kernels::cuda::max_pool2d_backward<T>(tgy.data<T>(), am.data<int32_t>(), gx.data<T>(), s);
#endif
  }
  return {y.to_vector(), am.to_vector(), gx.to_vector()};
}

const std::vector<PoolCase>& max_pool_cases() {
  static const std::vector<PoolCase> list = {
      {1, 3, 5, 5, 3, 2, 1},    // batch 1, the stem's 3x3 / 2 pad 1
      {2, 5, 7, 9, 3, 2, 1},    // odd sizes
      {3, 4, 6, 6, 2, 2, 0},    // disjoint windows
      {2, 33, 8, 7, 3, 1, 1},   // overlapping windows (several outputs per input), C past a 32 tile
      {1, 1, 4, 4, 4, 4, 0},    // one window over the whole plane
      {2, 70, 14, 14, 3, 2, 1}  // the stem at 28 px, many channels
  };
  return list;
}

// ties: inputs on a grid of 3 values, so most windows hold their maximum more than once and the first one wins.
template <class T>
void max_pool_layouts(const PoolCase& k, uint64_t seed, bool ties) {
  INFO(describe(k) << ", " << engine::dtype_name(engine::dtype_of<T>()) << (ties ? ", ties" : ""));
  const kernels::MaxPool2dShape a = max_shape(k, Layout::nchw), b = max_shape(k, Layout::nhwc);
  std::vector<double> x = uniform(k.n * k.c * k.h * k.w, seed);
  if (ties)
    for (double& v : x) v = std::round(v);
  const std::vector<double> gy = uniform(k.n * k.c * a.out_h * a.out_w, seed + 1);
  const PoolOutputs ref = max_pool_run<T>(Impl::cpu, a, x, gy);
  const PoolOutputs got =
      max_pool_run<T>(Impl::cpu, b, to_nhwc(x, k.n, k.c, k.h, k.w), to_nhwc(gy, k.n, k.c, a.out_h, a.out_w));
  // Exact: the maximum is one of the inputs, the argmax the same tap, and each input's gradient adds the same
  // terms in the same order in both layouts.
  CHECK_OK(compare(to_nchw(got.y, k.n, k.c, a.out_h, a.out_w), ref.y, 0.0));
  CHECK_OK(compare(to_nchw(got.argmax, k.n, k.c, a.out_h, a.out_w), ref.argmax, 0.0));
  CHECK_OK(compare(to_nchw(got.gx, k.n, k.c, k.h, k.w), ref.gx, 0.0));
}

struct AdaptiveCase {
  int64_t n, c, h, w, oh, ow;
};
kernels::AdaptivePool2dShape adaptive_shape(const AdaptiveCase& k, Layout layout) {
  kernels::AdaptivePool2dShape s;
  s.planes = k.n * k.c, s.h = k.h, s.w = k.w, s.out_h = k.oh, s.out_w = k.ow, s.layout = layout, s.c = k.c;
  return s;
}

template <class T>
std::vector<double> adaptive_run(Impl impl, const kernels::AdaptivePool2dShape& s, const std::vector<double>& x,
                                 const std::vector<double>& gy, std::vector<double>* gx_out) {
  const DType dt = engine::dtype_of<T>();
  const Device dev = device_of(impl);
  Tensor tx = flat(x, dt, dev), tgy = flat(gy, dt, dev);
  Tensor y = Tensor::empty({int64_t(gy.size())}, dt, dev), gx = Tensor::full({int64_t(x.size())}, 1e30, dt, dev);
  if (impl == Impl::cpu) {
    kernels::cpu::adaptive_avg_pool2d_forward<T>(tx.data<T>(), y.data<T>(), s);
    kernels::cpu::adaptive_avg_pool2d_backward<T>(tgy.data<T>(), gx.data<T>(), s);
  } else {
#if ENGINE_HAVE_CUDA
    kernels::cuda::adaptive_avg_pool2d_forward<T>(tx.data<T>(), y.data<T>(), s);
    kernels::cuda::adaptive_avg_pool2d_backward<T>(tgy.data<T>(), gx.data<T>(), s);
#endif
  }
  *gx_out = gx.to_vector();
  return y.to_vector();
}

const std::vector<AdaptiveCase>& adaptive_cases() {
  static const std::vector<AdaptiveCase> list = {
      {1, 3, 7, 7, 1, 1},   // global average, batch 1: [N, C] in either layout
      {3, 33, 4, 4, 1, 1},  // global, C past a 32 tile
      {2, 5, 5, 7, 3, 2},   // windows that do not divide the input (overlapping)
      {2, 4, 6, 6, 4, 4},   //
      {2, 3, 3, 3, 5, 5},   // more outputs than inputs
      {4, 64, 1, 1, 1, 1}   // 1x1 input (ResNet's last stage at 28 px)
  };
  return list;
}

template <class T>
void adaptive_layouts(const AdaptiveCase& k, uint64_t seed) {
  INFO("N=" << k.n << " C=" << k.c << " " << k.h << "x" << k.w << " -> " << k.oh << "x" << k.ow << ", "
            << engine::dtype_name(engine::dtype_of<T>()));
  const std::vector<double> x = uniform(k.n * k.c * k.h * k.w, seed), gy = uniform(k.n * k.c * k.oh * k.ow, seed + 1);
  std::vector<double> gx_ref, gx_got;
  const std::vector<double> y_ref = adaptive_run<T>(Impl::cpu, adaptive_shape(k, Layout::nchw), x, gy, &gx_ref);
  const std::vector<double> y_got =
      adaptive_run<T>(Impl::cpu, adaptive_shape(k, Layout::nhwc), to_nhwc(x, k.n, k.c, k.h, k.w),
                      to_nhwc(gy, k.n, k.c, k.oh, k.ow), &gx_got);
  // Exact: each output sums its window in double in the same (ih, iw) order, each input gradient adds the same
  // quotients in the same output order, in both layouts.
  CHECK_OK(compare(to_nchw(y_got, k.n, k.c, k.oh, k.ow), y_ref, 0.0));
  CHECK_OK(compare(to_nchw(gx_got, k.n, k.c, k.h, k.w), gx_ref, 0.0));
  if (k.oh == 1 && k.ow == 1) CHECK_OK(compare(y_got, y_ref, 0.0));  // [N, C] either way: no permute
}

// ---- option-A shortcut ----

struct ShortcutCase {
  int64_t n, c_in, h, w, c_out;
  int stride, pad_front;
};
kernels::ShortcutAParams shortcut_params(const ShortcutCase& k, Layout layout) {
  kernels::ShortcutAParams p;
  p.n = k.n, p.c_in = k.c_in, p.h_in = k.h, p.w_in = k.w, p.c_out = k.c_out;
  p.h_out = (k.h + k.stride - 1) / k.stride, p.w_out = (k.w + k.stride - 1) / k.stride;
  p.stride = k.stride, p.pad_front = k.pad_front, p.layout = layout;
  return p;
}

template <class T>
void shortcut_run(Impl impl, const kernels::ShortcutAParams& p, const std::vector<double>& x,
                  const std::vector<double>& gy, std::vector<double>* y_out, std::vector<double>* gx_out) {
  const DType dt = engine::dtype_of<T>();
  const Device dev = device_of(impl);
  Tensor tx = flat(x, dt, dev), tgy = flat(gy, dt, dev);
  Tensor y = Tensor::full({int64_t(gy.size())}, 1e30, dt, dev), gx = Tensor::full({int64_t(x.size())}, 1e30, dt, dev);
  if (impl == Impl::cpu) {
    kernels::cpu::shortcut_a_forward<T>(tx.data<T>(), y.data<T>(), p);
    kernels::cpu::shortcut_a_backward<T>(tgy.data<T>(), gx.data<T>(), p);
  } else {
#if ENGINE_HAVE_CUDA
    kernels::cuda::shortcut_a_forward<T>(tx.data<T>(), y.data<T>(), p);
    kernels::cuda::shortcut_a_backward<T>(tgy.data<T>(), gx.data<T>(), p);
#endif
  }
  *y_out = y.to_vector(), *gx_out = gx.to_vector();
}

const std::vector<ShortcutCase>& shortcut_cases() {
  static const std::vector<ShortcutCase> list = {
      {2, 3, 7, 7, 6, 2, 1},    // odd size: h_out = ceil(7/2) = 4, asymmetric padding 1 + 2
      {1, 4, 8, 8, 8, 2, 2},    // batch 1, the CIFAR ResNet's 16 -> 32 at small size
      {3, 5, 9, 6, 5, 1, 0},    // stride 1, no padding: a copy
      {2, 16, 5, 5, 32, 2, 8},  // 5x5 -> 3x3
      {2, 33, 3, 4, 70, 2, 20}  // C past a 32 tile
  };
  return list;
}

template <class T>
void shortcut_layouts(const ShortcutCase& k, uint64_t seed) {
  INFO("N=" << k.n << " C " << k.c_in << " -> " << k.c_out << " " << k.h << "x" << k.w << " s=" << k.stride
            << " pad_front=" << k.pad_front << ", " << engine::dtype_name(engine::dtype_of<T>()));
  const kernels::ShortcutAParams a = shortcut_params(k, Layout::nchw), b = shortcut_params(k, Layout::nhwc);
  const std::vector<double> x = uniform(k.n * k.c_in * k.h * k.w, seed);
  const std::vector<double> gy = uniform(k.n * k.c_out * a.h_out * a.w_out, seed + 1);
  std::vector<double> y_ref, gx_ref, y_got, gx_got;
  shortcut_run<T>(Impl::cpu, a, x, gy, &y_ref, &gx_ref);
  shortcut_run<T>(Impl::cpu, b, to_nhwc(x, k.n, k.c_in, k.h, k.w), to_nhwc(gy, k.n, k.c_out, a.h_out, a.w_out), &y_got,
                  &gx_got);
  CHECK_OK(compare(to_nchw(y_got, k.n, k.c_out, a.h_out, a.w_out), y_ref, 0.0));  // copies and zeros: exact
  CHECK_OK(compare(to_nchw(gx_got, k.n, k.c_in, k.h, k.w), gx_ref, 0.0));
}

// ---- permute ----

template <class T>
void permute_run(Impl impl, const kernels::PermuteShape& s, const std::vector<double>& x, std::vector<double>* nhwc,
                 std::vector<double>* back) {
  const DType dt = engine::dtype_of<T>();
  const Device dev = device_of(impl);
  Tensor tx = flat(x, dt, dev);
  Tensor y = Tensor::full({int64_t(x.size())}, 1e30, dt, dev), z = Tensor::full({int64_t(x.size())}, 1e30, dt, dev);
  if (impl == Impl::cpu) {
    kernels::cpu::nchw_to_nhwc<T>(tx.data<T>(), y.data<T>(), s);
    kernels::cpu::nhwc_to_nchw<T>(y.data<T>(), z.data<T>(), s);
  } else {
#if ENGINE_HAVE_CUDA
    kernels::cuda::nchw_to_nhwc<T>(tx.data<T>(), y.data<T>(), s);
    kernels::cuda::nhwc_to_nchw<T>(y.data<T>(), z.data<T>(), s);
#endif
  }
  *nhwc = y.to_vector(), *back = z.to_vector();
}

const std::vector<kernels::PermuteShape>& permute_cases() {
  static const std::vector<kernels::PermuteShape> list = {
      {1, 1, 28, 28},                  // Fashion-MNIST's input: one channel, the same memory
      {2, 3, 5, 7},   {1, 33, 3, 35},  // partial 32x32 tiles both ways
      {3, 64, 1, 1},  {4, 70, 9, 11}, {2, 40, 33, 33}};
  return list;
}

template <class T>
void permute_check(Impl impl, const kernels::PermuteShape& s, uint64_t seed) {
  INFO("N=" << s.n << " C=" << s.c << " H=" << s.h << " W=" << s.w << ", " << engine::dtype_name(engine::dtype_of<T>())
            << (impl == Impl::cpu ? ", cpu" : ", cuda"));
  // Values on T's grid already (rounded through T), so the reference permute of the host doubles is exact too.
  const std::vector<double> x =
      flat(uniform(s.n * s.c * s.h * s.w, seed), engine::dtype_of<T>(), Device::cpu()).to_vector();
  std::vector<double> nhwc, back;
  permute_run<T>(impl, s, x, &nhwc, &back);
  CHECK_OK(compare(nhwc, to_nhwc(x, s.n, s.c, s.h, s.w), 0.0));
  CHECK_OK(compare(back, x, 0.0));  // the backward (the inverse permute) undoes it
}

}  // namespace

TEST_CASE("batch_norm nhwc: every variant, forward, backward and running stats match NCHW", "[batch_norm][nhwc]") {
  uint64_t seed = 100;
  for (const BnCase& k : bn_cases()) {
    bn_layouts<double>(k, seed);
    bn_layouts<float>(k, seed);
    bn_layouts<kernels::bf16>(k, seed);
    seed += 10;
  }
}

TEST_CASE("batch_norm nhwc: the cuDNN engine rejects an NHWC shape by name", "[batch_norm][nhwc][cudnn]") {
#if ENGINE_HAVE_CUDNN
  // The check comes before any descriptor, handle or memory is touched, so null pointers and no device suffice.
  kernels::BatchNormShape s;
  s.n = 2, s.c = 3, s.hw = 4, s.layout = Layout::nhwc;
  CHECK_THROWS_WITH(kernels::cudnn::batch_norm_forward_train<float>(nullptr, nullptr, nullptr, nullptr, nullptr,
                                                                    nullptr, nullptr, nullptr, s, 0.1, 1e-5),
                    Catch::Contains("NHWC is not supported by the cuDNN engine"));
  CHECK_THROWS_WITH(kernels::cudnn::batch_norm_backward_train<float>(nullptr, nullptr, nullptr, nullptr, nullptr,
                                                                     nullptr, nullptr, nullptr, s, 1e-5),
                    Catch::Contains("NHWC is not supported by the cuDNN engine"));
#else
  WARN("SKIPPED: built without cuDNN");
#endif
}

TEST_CASE("max_pool2d nhwc: forward, argmax and backward match NCHW exactly, ties included", "[pool][nhwc]") {
  uint64_t seed = 200;
  for (const PoolCase& k : max_pool_cases())
    for (bool ties : {false, true}) {
      max_pool_layouts<double>(k, seed, ties);
      max_pool_layouts<float>(k, seed, ties);
      max_pool_layouts<kernels::bf16>(k, seed, ties);
      seed += 10;
    }
}

TEST_CASE("max_pool2d nhwc: a tie goes to the first tap in row-major order", "[pool][nhwc]") {
  // One 2x2 image of two channels, all values equal in channel 0, the last two equal maxima in channel 1.
  const std::vector<double> x = {5, 1, 5, 2, 5, 7, 5, 7};  // (h, w, c) order
  kernels::MaxPool2dShape s = max_shape({1, 2, 2, 2, 2, 2, 0}, Layout::nhwc);
  const PoolOutputs o = max_pool_run<double>(Impl::cpu, s, x, {1.0, 2.0});
  CHECK(o.y == std::vector<double>{5, 7});
  CHECK(o.argmax == std::vector<double>{0, 2});
  CHECK(o.gx == std::vector<double>{1, 0, 0, 0, 0, 2, 0, 0});
}

TEST_CASE("max_pool2d nhwc: a shape without its channel count is a named error", "[pool][nhwc]") {
  kernels::MaxPool2dShape s = max_shape({1, 2, 2, 2, 2, 2, 0}, Layout::nhwc);
  s.c = 0;
  std::vector<double> x(8), y(2);
  std::vector<int32_t> am(2);
  CHECK_THROWS_WITH(kernels::cpu::max_pool2d_forward<double>(x.data(), y.data(), am.data(), s),
                    Catch::Contains("channel count"));
}

TEST_CASE("adaptive_avg_pool2d nhwc: forward and backward match NCHW exactly", "[pool][nhwc]") {
  uint64_t seed = 300;
  for (const AdaptiveCase& k : adaptive_cases()) {
    adaptive_layouts<double>(k, seed);
    adaptive_layouts<float>(k, seed);
    adaptive_layouts<kernels::bf16>(k, seed);
    seed += 10;
  }
}

TEST_CASE("shortcut_a nhwc: forward and backward match NCHW exactly", "[shortcut][nhwc]") {
  uint64_t seed = 400;
  for (const ShortcutCase& k : shortcut_cases()) {
    shortcut_layouts<double>(k, seed);
    shortcut_layouts<float>(k, seed);
    shortcut_layouts<kernels::bf16>(k, seed);
    seed += 10;
  }
}

TEST_CASE("layout permute: NCHW -> NHWC and back, exact, every storage type", "[layout][nhwc]") {
  uint64_t seed = 500;
  for (const kernels::PermuteShape& s : permute_cases()) {
    permute_check<double>(Impl::cpu, s, seed);
    permute_check<float>(Impl::cpu, s, seed);
    permute_check<kernels::bf16>(Impl::cpu, s, seed);
    seed += 10;
  }
}

// ---- CUDA NHWC against CPU NHWC ----

TEST_CASE("nhwc cuda: batch norm, pooling, shortcut and permute match the CPU NHWC kernels", "[nhwc][cuda]") {
  SKIP_WITHOUT_CUDA();
  // Batch norm: CUDA's statistics are shifted sums in double (var = s2/m - (s1/m)^2, some cancellation: twice the
  // CPU-vs-CPU bound in float64), its element-wise passes run in compute_t<T> with FMAs where the CPU runs double:
  // a few float roundings per value (64 u_f32 covers the affine map, the input gradient's four terms and the
  // statistics they read); bf16 values near a rounding boundary land one bf16 ulp (2^-7 relative) apart, twice
  // where two roundings chain: 2^-6. Pooling and permute are exact; the shortcut too.
  auto bn_device_tol = [](DType dt, double k) {
    if (dt == DType::f64) return 2 * bn_tol(dt, k);
    return (dt == DType::bf16 ? 0x1p-6 : 0.0) + 64 * 0x1p-24 + 8 * k * 0x1p-53;
  };
  uint64_t seed = 600;
  auto bn_device = [&](auto tag, const BnCase& k) {
    using T = decltype(tag);
    const DType dt = engine::dtype_of<T>();
    BnInputs in = bn_inputs(k, seed);
    in.x = to_nhwc(in.x, k.n, k.c, k.h, k.w), in.r = to_nhwc(in.r, k.n, k.c, k.h, k.w);
    in.gy = to_nhwc(in.gy, k.n, k.c, k.h, k.w);
    for (BnMode mode : {BnMode::plain, BnMode::relu, BnMode::residual, BnMode::residual_relu})
      for (bool training : {true, false}) {
        INFO(describe(k) << ", " << engine::dtype_name(dt) << ", " << mode_name(mode)
                         << (training ? ", train" : ", eval") << ", cuda NHWC against the CPU");
        const BnOutputs ref = bn_run<T>(Impl::cpu, k, Layout::nhwc, in, mode, training, true);
        const BnOutputs got = bn_run<T>(Impl::cuda, k, Layout::nhwc, in, mode, training, true);
        check_bn(got, ref, k, bn_device_tol(dt, double(k.n * k.h * k.w)), false);
      }
  };
  for (const BnCase& k : bn_cases()) {
    bn_device(double{}, k);
    bn_device(float{}, k);
    bn_device(kernels::bf16{}, k);
    seed += 10;
  }
  auto pool_device = [&](auto tag) {
    using T = decltype(tag);
    for (const PoolCase& k : max_pool_cases()) {
      INFO(describe(k) << ", " << engine::dtype_name(engine::dtype_of<T>()) << ", cuda NHWC max pool");
      const kernels::MaxPool2dShape s = max_shape(k, Layout::nhwc);
      std::vector<double> x = uniform(k.n * k.c * k.h * k.w, seed++);
      for (size_t i = 0; i < x.size(); i += 2) x[i] = std::round(x[i]);  // some ties
      const std::vector<double> gy = uniform(k.n * k.c * s.out_h * s.out_w, seed++);
      const PoolOutputs ref = max_pool_run<T>(Impl::cpu, s, x, gy), got = max_pool_run<T>(Impl::cuda, s, x, gy);
      CHECK_OK(compare(got.y, ref.y, 0.0));
      CHECK_OK(compare(got.argmax, ref.argmax, 0.0));
      CHECK_OK(compare(got.gx, ref.gx, 0.0));  // the same terms in the same order: a gather on CUDA
    }
    for (const AdaptiveCase& k : adaptive_cases()) {
      INFO("adaptive N=" << k.n << " C=" << k.c << ", " << engine::dtype_name(engine::dtype_of<T>()) << ", cuda");
      const kernels::AdaptivePool2dShape s = adaptive_shape(k, Layout::nhwc);
      const std::vector<double> x = uniform(k.n * k.c * k.h * k.w, seed++),
                                gy = uniform(k.n * k.c * k.oh * k.ow, seed++);
      std::vector<double> gx_ref, gx_got;
      const std::vector<double> y_ref = adaptive_run<T>(Impl::cpu, s, x, gy, &gx_ref);
      const std::vector<double> y_got = adaptive_run<T>(Impl::cuda, s, x, gy, &gx_got);
      CHECK_OK(compare(y_got, y_ref, 0.0));
      CHECK_OK(compare(gx_got, gx_ref, 0.0));
    }
    for (const ShortcutCase& k : shortcut_cases()) {
      INFO("shortcut C " << k.c_in << " -> " << k.c_out << ", " << engine::dtype_name(engine::dtype_of<T>()));
      const kernels::ShortcutAParams p = shortcut_params(k, Layout::nhwc);
      const std::vector<double> x = uniform(k.n * k.c_in * k.h * k.w, seed++);
      const std::vector<double> gy = uniform(k.n * k.c_out * p.h_out * p.w_out, seed++);
      std::vector<double> y_ref, gx_ref, y_got, gx_got;
      shortcut_run<T>(Impl::cpu, p, x, gy, &y_ref, &gx_ref);
      shortcut_run<T>(Impl::cuda, p, x, gy, &y_got, &gx_got);
      CHECK_OK(compare(y_got, y_ref, 0.0));
      CHECK_OK(compare(gx_got, gx_ref, 0.0));
    }
    for (const kernels::PermuteShape& s : permute_cases()) permute_check<T>(Impl::cuda, s, seed++);
  };
  pool_device(double{});
  pool_device(float{});
  pool_device(kernels::bf16{});
}
