// Table-driven op tests (in the spirit of ggml's test-backend-ops and PyTorch's OpInfo): one OpInfo per op lists
// its cases (shapes, parameters, edge cases) and its bad calls; the same battery runs for every entry of
// backends() (device x dtype):
//  1. forward against the entry's own naive double-precision reference (CPU, every dtype), tolerance below;
//  2. float64 central-difference gradient check on the CPU for every differentiable input (tests/gradcheck.h);
//  3. CUDA against the CPU in the same dtype: outputs and gradients (skips visibly without a device);
//  4. every bad call throws engine::EngineError whose message names the op ("<error_name>: ");
//  5. NaN propagation: a NaN planted in each differentiable input (element 0, or OpCase::nan_at) shows up exactly
//     where the reference, written with PyTorch's semantics (relu and max pass NaN), has it, and somewhere at least.
// Adding an op = writing it and one OpInfo (tests/ops/test_op_table.cpp); adding a dtype = one Backend. bf16
// backends run the activation ops (OpInfo::bf16) with their compute-typed inputs (OpCase::compute_inputs: batch
// norm's parameters and statistics) in float, as mixed precision does.
#pragma once
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/random.h"
#include "engine/tensor.h"
#include "tests/gradcheck.h"

namespace testing::optable {
using engine::Device;
using engine::DType;
using engine::Shape;
using engine::Tensor;

using Values = std::vector<std::vector<double>>;  // each input's elements, as double
using Tensors = std::vector<Tensor>;

struct OpCase {
  std::string name;          // shapes and parameters, printed with every failure
  Tensors inputs;            // CPU master values: float64 (converted to each dtype) or int32 (labels, kept)
  std::vector<size_t> grad;  // the differentiable inputs: gradient-checked, compared on CUDA, given a NaN
  int64_t k = 1;             // terms in the longest sum behind one output value (sets the float tolerance)
  std::function<Tensors(const Tensors&)> run;       // the op; outputs[0] is the one differentiated
  std::function<Tensors(const Values&)> reference;  // naive loops in double, one float64 tensor per output
  std::vector<int64_t> nan_at = {};                 // where each input gets its NaN (element 0 where not given)
  int64_t k_grad = 0;                               // terms in the longest sum behind one gradient value (0: k)
  std::vector<size_t> compute_inputs = {};          // inputs in the compute dtype (float for bf16), not storage
};

struct Make {  // tensors for bad calls, in the backend's dtype and on its device
  DType dtype;
  Device device;
  Tensor operator()(const Shape& s) const { return Tensor::zeros(s, dtype, device); }
  Tensor other_dtype(const Shape& s) const {
    return Tensor::zeros(s, dtype == DType::f64 ? DType::f32 : DType::f64, device);
  }
  Tensor labels(int64_t n) const { return Tensor::from_vector(std::vector<double>(n, 0.0), {n}, DType::i32, device); }
};

struct OpInfo {
  std::string error_name;  // every bad call's message contains "<error_name>: "
  std::vector<OpCase> cases;
  std::vector<std::function<void(const Make&)>> bad_calls;  // each must throw
  bool bf16 = true;  // an activation op, run on bf16 backends too; false for compute-only ops (the loss)
};

struct Backend {
  Device device;
  DType dtype;
};
inline const std::vector<Backend>& backends() {
  static const std::vector<Backend> list = {{Device::cpu(), DType::f64},  {Device::cpu(), DType::f32},
                                            {Device::cpu(), DType::bf16}, {Device::cuda(), DType::f64},
                                            {Device::cuda(), DType::f32}, {Device::cuda(), DType::bf16}};
  return list;
}

// Forward against the reference: the round-off of a K-term sum is at most K u sum|terms| (Higham), u the unit
// round-off of the dtype, and in practice (errors of either sign) about sqrt(K) u |terms|_2, which is K u for
// unit-scale inputs; |got - ref| <= 8 K u (1 + |ref|) leaves a factor 8 for that and for the few roundings around
// the sum (bias, scale, sqrt, exp/log). The reference reads the inputs as rounded to the dtype. bf16 computes in
// float (the same 8 K u with float's u) and rounds each stored result to bf16, u = 2^-8: at most twice on the way
// to an op's output (a linear layer's GEMM, then its bias), hence 2 * 2^-8 more.
inline double reference_tol(DType d, int64_t k) {
  if (d == DType::bf16) return 2 * 0x1p-8 + 8.0 * double(k) * 0x1p-24;
  return 8.0 * double(k) * (d == DType::f64 ? 0x1p-53 : 0x1p-24);
}
struct Tol {
  double atol, rtol;
};
// CUDA against CPU: the table of tests/ops/test_norm_pool_loss_cuda.cpp (float64: round-off only, sums in another
// order; float32: float element-wise math on the GPU against the CPU's), plus both sides' round-off of the longest
// sum of the forward or backward (2 * reference_tol), which dominates for GEMMs (as in test_conv2d_cuda.cpp).
// bf16: both devices round float results that differ in their last float bits, so a value near a rounding
// boundary lands one bf16 ulp (2^-7 relative) apart, twice over where two roundings chain (2^-6).
inline Tol cuda_tol(const OpCase& c, DType d) {
  const double sums = 2 * reference_tol(d, std::max(c.k, c.k_grad));
  const Tol base = d == DType::f64 ? Tol{1e-12, 1e-10} : d == DType::f32 ? Tol{1e-5, 1e-4} : Tol{0x1p-6, 0x1p-6};
  return {base.atol + sums, base.rtol + sums};
}

// The case's inputs in the backend's dtype on its device (fresh copies), differentiable ones requiring grad.
inline Tensors inputs_for(const OpCase& c, Backend b) {
  Tensors in;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    const Tensor& t = c.inputs[i];
    const bool compute = std::find(c.compute_inputs.begin(), c.compute_inputs.end(), i) != c.compute_inputs.end();
    const DType want = compute ? engine::compute_dtype(b.dtype) : b.dtype;
    Tensor d = (t.dtype() == DType::i32 ? t.clone() : t.clone().to(want)).to(b.device);
    for (size_t g : c.grad)
      if (g == i) d.set_requires_grad(true);
    in.push_back(d);
  }
  return in;
}
inline int64_t nan_index(const OpCase& c, size_t input) { return input < c.nan_at.size() ? c.nan_at[input] : 0; }
inline OpCase with_nan(OpCase c, size_t input) {
  std::vector<double> v = c.inputs[input].to_vector();
  v[nan_index(c, input)] = std::numeric_limits<double>::quiet_NaN();
  c.inputs[input] = Tensor::from_vector(v, c.inputs[input].shape(), c.inputs[input].dtype());
  return c;
}
inline bool any_nan(const Tensor& t) {
  for (double v : t.to_vector())
    if (std::isnan(v)) return true;
  return false;
}

inline void require_all_close(const Tensors& got, const Tensors& want, Tol tol, NonFinite nf) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("result " << i << " of " << want.size());
    REQUIRE(got[i].defined() == want[i].defined());
    if (want[i].defined()) REQUIRE_OK(testing::close(got[i], want[i], tol.atol, tol.rtol, nf));
  }
}

// 1 and 5 on the CPU: forward values, then with a NaN planted in each differentiable input.
inline void check_reference(const OpCase& c, Backend b) {
  auto forward = [&](const OpCase& k, NonFinite nf) {
    Tensors in = inputs_for(k, b);
    Values v;
    for (const Tensor& t : in) v.push_back(t.to_vector());  // the reference sees the rounded inputs
    const Tensors want = k.reference(v);
    const double tol = reference_tol(b.dtype, k.k);
    require_all_close(k.run(in), want, {tol, tol}, nf);
    return want;
  };
  forward(c, NonFinite::fail);
  for (size_t g : c.grad) {
    INFO("NaN planted at element " << nan_index(c, g) << " of input " << g);
    const Tensors want = forward(with_nan(c, g), NonFinite::allow_matching);
    REQUIRE(any_nan(want[0]));
  }
}

// The outputs, then the gradients of the differentiable inputs for a fixed random seed, all on the CPU.
inline Tensors run_with_backward(const OpCase& c, Backend b, bool backward) {
  Tensors in = inputs_for(c, b), out = c.run(in), result;
  if (backward) {
    engine::Generator gen(99);
    run_backward(out[0], engine::randn(out[0].shape(), DType::f64, Device::cpu(), gen).to(b.dtype).to(b.device));
  }
  for (const Tensor& o : out) result.push_back(o.detach().to(Device::cpu()));
  if (backward)
    for (size_t g : c.grad) result.push_back(in[g].grad().defined() ? in[g].grad().to(Device::cpu()) : Tensor());
  return result;
}

// 3: CUDA against the CPU, forward and backward; then forward with each NaN plant.
inline void check_cuda(const OpCase& c, Backend b) {
  const Backend cpu{Device::cpu(), b.dtype};
  require_all_close(run_with_backward(c, b, true), run_with_backward(c, cpu, true), cuda_tol(c, b.dtype),
                    NonFinite::fail);
  for (size_t g : c.grad) {
    INFO("NaN planted at element " << nan_index(c, g) << " of input " << g);
    const OpCase k = with_nan(c, g);
    require_all_close(run_with_backward(k, b, false), run_with_backward(k, cpu, false), cuda_tol(c, b.dtype),
                      NonFinite::allow_matching);
  }
}

// 4.
inline void check_bad_calls(const OpInfo& op, Backend b) {
  for (size_t i = 0; i < op.bad_calls.size(); ++i) {
    INFO("bad call " << i);
    try {
      op.bad_calls[i](Make{b.dtype, b.device});
      FAIL("no error thrown");
    } catch (const engine::EngineError& e) {
      REQUIRE_THAT(e.what(), Catch::Contains(op.error_name + ": "));
    }
  }
}

inline void for_each_case(const OpInfo& op, bool cuda, const std::function<void(const OpCase&, Backend)>& f) {
  for (const Backend& b : backends()) {
    if (b.device.is_cuda() != cuda || (b.dtype == DType::bf16 && !op.bf16)) continue;
    for (const OpCase& c : op.cases) {
      INFO(op.error_name << " " << c.name << " on " << b.device.str() << ", " << dtype_name(b.dtype));
      f(c, b);
    }
    INFO(op.error_name << " bad calls on " << b.device.str() << ", " << dtype_name(b.dtype));
    check_bad_calls(op, b);
  }
}

// 2: float64 on the CPU, every differentiable input.
inline void check_gradients(const OpInfo& op) {
  for (const OpCase& c : op.cases) {
    INFO(op.error_name << " " << c.name);
    Tensors in = inputs_for(c, {Device::cpu(), DType::f64}), wrt;
    for (size_t g : c.grad) wrt.push_back(in[g]);
    if (!wrt.empty()) REQUIRE_GRADCHECK(gradcheck([&] { return c.run(in)[0]; }, wrt));
  }
}

}  // namespace testing::optable

// The three test cases of one entry; `entry` is a function returning its OpInfo. No comma or semicolon in the
// names: a Catch test spec splits at commas, CTest at semicolons.
#define OPTABLE_TEST_CASES(entry, title)                                                                             \
  TEST_CASE("op table " title ": forward vs reference + NaN propagation + bad calls on the CPU", "[ops][optable]") { \
    testing::optable::for_each_case(entry(), false, testing::optable::check_reference);                              \
  }                                                                                                                  \
  TEST_CASE("op table " title ": float64 gradient check", "[ops][optable][gradcheck]") {                             \
    testing::optable::check_gradients(entry());                                                                      \
  }                                                                                                                  \
  TEST_CASE("op table " title ": CUDA vs CPU + NaN propagation + bad calls", "[ops][optable][cuda]") {               \
    SKIP_WITHOUT_CUDA();                                                                                             \
    testing::optable::for_each_case(entry(), true, testing::optable::check_cuda);                                    \
  }
