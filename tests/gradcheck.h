// The gradient-check harness and helpers every test shares.
//
// gradcheck(f, wrt): f() computes a tensor from the tensors in `wrt` (leaves that it reads, e.g. an input and
// a module's parameters). With a fixed random projection r, L = sum(f() * r); for every element of every
// tensor in wrt, the central difference (L(x+h) - L(x-h)) / 2h is compared with autograd's dL/dx. The error
// of an element is |analytic - numeric| / max(|analytic|, |numeric|, 1), which is absolute near zero and
// relative for large values; it goes through testing::compare (tests/compare.h), so a NaN or Inf on either side
// fails. Run it in float64; `wrt` may live on CPU or CUDA.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/tensor.h"
#include "tests/compare.h"

namespace testing {

struct GradcheckOptions {
  double eps = 1e-6;  // finite-difference step
  double tol = 1e-6;  // largest scaled error allowed
  uint64_t seed = 1234;
};

struct GradcheckResult {
  bool ok = true;
  double worst_error = 0;  // the largest scaled error; +inf where a value is not finite; never NaN
  std::string report;      // the worst (or first non-finite) element: which tensor, which index, analytic vs numeric
};

GradcheckResult gradcheck(const std::function<engine::Tensor()>& f, const std::vector<engine::Tensor>& wrt,
                          const GradcheckOptions& opt = {});

// A float64 CPU tensor of the given shape, N(0, 1) values from `seed`, that requires grad.
engine::Tensor rand_leaf(const engine::Shape& shape, uint64_t seed, engine::DType dtype = engine::DType::f64,
                         engine::Device device = engine::Device::cpu());

// Max over elements of |a - b| / (atol + rtol * |b|); <= 1 means "close". b is the reference. +inf (never NaN)
// when either side holds a NaN or Inf; then, and whenever the ratio exceeds 1, the element is reported with the
// caller's next assertion (UNSCOPED_INFO). testing::close gives the whole Comparison.
double close_ratio(const engine::Tensor& a, const engine::Tensor& b, double atol, double rtol);

}  // namespace testing

// Matches a GradcheckResult, printing the worst element when it fails.
#define REQUIRE_GRADCHECK(expr) REQUIRE_OK(expr)

// CUDA tests start with this: without a device they print one visible SKIPPED line and return.
#define SKIP_WITHOUT_CUDA()                                                   \
  do {                                                                        \
    if (!engine::cuda_available()) {                                          \
      WARN("SKIPPED: no CUDA device: " << engine::cuda_unavailable_reason()); \
      return;                                                                 \
    }                                                                         \
  } while (0)
