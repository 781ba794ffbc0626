#include "tests/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "engine/autograd.h"
#include "engine/ops/elementwise.h"
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

  for (size_t k = 0; k < wrt.size(); ++k) {
    Tensor x = wrt[k];
    std::vector<double> analytic = x.grad().defined() ? x.grad().to_vector() : std::vector<double>(x.numel(), 0.0);
    std::vector<double> base = x.to_vector();
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
      double numeric = (plus - minus) / (2 * opt.eps);
      double err = std::abs(analytic[i] - numeric) / std::max({std::abs(analytic[i]), std::abs(numeric), 1.0});
      if (err > res.worst_error || (i == 0 && k == 0)) {
        res.worst_error = std::max(res.worst_error, err);
        std::ostringstream os;
        os << "worst element: input " << k << " " << shape_str(x.shape()) << " index " << i << ": analytic "
           << analytic[i] << " vs numeric " << numeric << " (scaled error " << err << ", tolerance " << opt.tol << ")";
        res.report = os.str();
      }
    }
  }
  res.ok = res.worst_error <= opt.tol;
  return res;
}

Tensor rand_leaf(const Shape& shape, uint64_t seed, DType dtype, Device device) {
  Generator g(seed);
  Tensor t = randn(shape, dtype, device, g);
  t.set_requires_grad(true);
  return t;
}

double close_ratio(const Tensor& a, const Tensor& b, double atol, double rtol) {
  ENGINE_CHECK(a.shape() == b.shape(), "close_ratio: shapes differ");
  std::vector<double> va = a.to_vector(), vb = b.to_vector();
  double worst = 0;
  for (size_t i = 0; i < va.size(); ++i)
    worst = std::max(worst, std::abs(va[i] - vb[i]) / (atol + rtol * std::abs(vb[i])));
  return worst;
}

}  // namespace testing
