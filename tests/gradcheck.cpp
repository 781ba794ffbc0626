#include "tests/gradcheck.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <sstream>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/random.h"

namespace testing {
using namespace engine;

namespace {
// sum(y * r) as a double, without autograd.
double projected(const Tensor& y, const std::vector<double>& r) {
  std::vector<double> v = y.to_vector();
  double s = 0;
  for (size_t i = 0; i < v.size(); ++i) s += v[i] * r[i];
  return s;
}

void set_element(Tensor& t, int64_t i, double value) {
  std::vector<double> v = t.to_vector();
  v[i] = value;
  t.copy_(Tensor::from_vector(v, t.shape(), t.dtype(), t.device()));
}
}  // namespace

GradcheckResult gradcheck(const std::function<Tensor()>& f, const std::vector<Tensor>& wrt,
                          const GradcheckOptions& opt) {
  GradcheckResult res;
  for (auto t : wrt) t.zero_grad();
  Tensor y = f();
  Generator gen(opt.seed);
  Tensor r = randn(y.shape(), DType::f64, Device::cpu(), gen);
  std::vector<double> rv = r.to_vector();
  run_backward(y, r.to(y.dtype()).to(y.device()));

  Comparison worst;
  int64_t worst_input = -1;
  for (size_t k = 0; k < wrt.size(); ++k) {
    Tensor x = wrt[k];
    std::vector<double> analytic = x.grad().defined() ? x.grad().to_vector() : std::vector<double>(x.numel(), 0.0);
    std::vector<double> base = x.to_vector(), numeric(x.numel());
    for (int64_t i = 0; i < x.numel(); ++i) {
      double plus, minus;
      {
        NoGradGuard ng;
        set_element(x, i, base[i] + opt.eps);
        plus = projected(f(), rv);
        set_element(x, i, base[i] - opt.eps);
        minus = projected(f(), rv);
        set_element(x, i, base[i]);
      }
      numeric[i] = (plus - minus) / (2 * opt.eps);
    }
    // scaled error <= tol  <=>  |analytic - numeric| <= tol * max(|analytic|, |numeric|, 1)
    const Comparison c = compare(analytic, numeric, [&](size_t i) {
      return opt.tol * std::max({std::abs(analytic[i]), std::abs(numeric[i]), 1.0});
    });
    if (worst_input < 0 || worse_than(c, worst)) worst = c, worst_input = static_cast<int64_t>(k);
  }
  res.ok = worst_input < 0 || worst.ok;
  res.worst_error = worst.worst * opt.tol;
  std::ostringstream os;
  os.precision(17);
  if (worst_input < 0) {
    os << "nothing to check: no input";
  } else if (worst.index < 0) {
    os << "every element of every input matches exactly (input " << worst_input << " has " << worst.size
       << " elements)";
  } else {
    os << (worst.worst_nonfinite ? "first non-finite" : "worst") << " element: input " << worst_input << " "
       << shape_str(wrt[worst_input].shape()) << " index " << worst.index << ": analytic " << worst.got
       << " vs numeric " << worst.want << " (scaled error " << res.worst_error << ", tolerance " << opt.tol << "; "
       << worst.failures << " of " << worst.size << " elements of this input fail)";
  }
  res.report = os.str();
  return res;
}

Tensor rand_leaf(const Shape& shape, uint64_t seed, DType dtype, Device device) {
  Generator g(seed);
  Tensor t = randn(shape, dtype, device, g);
  t.set_requires_grad(true);
  return t;
}

double close_ratio(const Tensor& a, const Tensor& b, double atol, double rtol) {
  ENGINE_CHECK(a.shape() == b.shape(), "close_ratio: shapes differ: ", shape_str(a.shape()), " vs ",
               shape_str(b.shape()));
  const Comparison c = close(a, b, atol, rtol);
  if (!c.ok) UNSCOPED_INFO("close_ratio(atol " << atol << ", rtol " << rtol << "): " << c.report);
  return c.worst;
}

}  // namespace testing
