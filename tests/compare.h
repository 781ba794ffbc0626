// The one comparison every numeric check of the suite goes through.
//
// Element i passes when |got[i] - want[i]| <= tol(i). The error is computed so that nothing non-finite can
// slip through: a NaN or an Inf on either side fails (unless the caller allows the same non-finite value in the
// same place, for NaN propagation tests), a NaN, infinite or negative tolerance fails, and the running worst is
// never NaN, because every failure that is not an ordinary finite excess is counted as +inf. A plain
// `worst = std::max(worst, err)` would keep the old worst when err is NaN (every comparison with NaN is false);
// here `ok` is false as soon as one element fails, whatever the order.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace testing {

enum class NonFinite {
  fail,            // any NaN or Inf on either side fails (the default)
  allow_matching,  // NaN against NaN, +Inf against +Inf, -Inf against -Inf pass; any other pairing fails
};

struct Comparison {
  bool ok = true;
  double worst = 0;                   // the largest |got - want| / tol; +inf for a non-finite failure; never NaN
  int64_t index = -1;                 // the worst element, or the first non-finite failure; -1 when nothing differs
  double got = 0, want = 0, tol = 0;  // that element
  int64_t failures = 0;               // elements outside their tolerance
  int64_t nonfinite = 0;              // of which a non-finite value (or tolerance) is the cause
  int64_t size = 0;
  bool worst_nonfinite = false;  // the reported element fails because of a non-finite value
  std::string report;            // what failed and where: index, got, want
};

namespace detail {
constexpr double kInf = std::numeric_limits<double>::infinity();

// error / tolerance of one element; +inf where a non-finite value decides.
inline double element_ratio(double g, double w, double tol, NonFinite nf, bool& nonfinite) {
  nonfinite = false;
  if (!std::isfinite(g) || !std::isfinite(w)) {
    const bool same = (std::isnan(g) && std::isnan(w)) || g == w;  // g == w: the same infinity
    if (nf == NonFinite::allow_matching && same) return 0;
    nonfinite = true;
    return kInf;
  }
  const double diff = std::abs(g - w);
  if (diff == 0) return 0;                  // equal values pass even with a zero tolerance
  if (!(tol > 0) || !std::isfinite(tol)) {  // a NaN or infinite tolerance would pass anything
    nonfinite = !std::isfinite(tol);
    return kInf;
  }
  const double r = diff / tol;
  return r == r ? r : kInf;
}
}  // namespace detail

// got against want (the reference), element by element, with tol_of(i) the tolerance of element i.
template <class TolOf>
Comparison compare(const std::vector<double>& got, const std::vector<double>& want, TolOf tol_of,
                   NonFinite nf = NonFinite::fail) {
  Comparison c;
  c.size = static_cast<int64_t>(want.size());
  if (got.size() != want.size()) {
    c.ok = false;
    c.worst = detail::kInf;
    c.report = "sizes differ: got " + std::to_string(got.size()) + " elements, want " + std::to_string(want.size());
    return c;
  }
  for (size_t i = 0; i < want.size(); ++i) {
    const double tol = tol_of(i);
    bool nonfinite = false;
    const double r = detail::element_ratio(got[i], want[i], tol, nf, nonfinite);
    if (r > 1) ++c.failures;
    if (nonfinite) ++c.nonfinite;
    // r is never NaN. The first non-finite failure is reported before any finite one, and stays.
    if (r > c.worst || (nonfinite && !c.worst_nonfinite)) {
      c.worst = r;
      c.worst_nonfinite = nonfinite;
      c.index = static_cast<int64_t>(i);
      c.got = got[i], c.want = want[i], c.tol = tol;
    }
  }
  c.ok = c.failures == 0;
  std::ostringstream os;
  os.precision(17);
  if (c.index < 0) {
    os << "all " << c.size << " elements equal";
  } else {
    os << c.failures << " of " << c.size << " elements outside tolerance";
    if (c.nonfinite) os << " (" << c.nonfinite << " non-finite)";
    os << (c.worst_nonfinite ? "; first non-finite" : "; worst") << " element " << c.index << ": got " << c.got
       << ", want " << c.want << ", |got - want| " << std::abs(c.got - c.want) << ", tolerance " << c.tol;
    if (c.worst != detail::kInf) os << " (error / tolerance " << c.worst << ")";
  }
  c.report = os.str();
  return c;
}

// |got - want| <= atol + rtol * |want|.
inline Comparison compare_close(const std::vector<double>& got, const std::vector<double>& want, double atol,
                                double rtol, NonFinite nf = NonFinite::fail) {
  return compare(
      got, want, [&](size_t i) { return atol + rtol * std::abs(want[i]); }, nf);
}

// |got - want| <= tol * max(1, |want|): absolute near zero, relative for large values.
inline Comparison compare_scaled(const std::vector<double>& got, const std::vector<double>& want, double tol,
                                 NonFinite nf = NonFinite::fail) {
  return compare(
      got, want, [&](size_t i) { return tol * std::max(1.0, std::abs(want[i])); }, nf);
}

// Tensors of the same shape, on any device: |got - want| <= atol + rtol * |want|.
inline Comparison close(const engine::Tensor& got, const engine::Tensor& want, double atol, double rtol,
                        NonFinite nf = NonFinite::fail) {
  if (got.shape() != want.shape()) {
    Comparison c;
    c.ok = false;
    c.worst = detail::kInf;
    c.report = "shapes differ: got " + engine::shape_str(got.shape()) + ", want " + engine::shape_str(want.shape());
    return c;
  }
  return compare_close(got.to_vector(), want.to_vector(), atol, rtol, nf);
}

// Whether `a` is the one to report rather than `b`: a failure before a pass, then the larger worst (never NaN).
inline bool worse_than(const Comparison& a, const Comparison& b) {
  if (a.ok != b.ok) return !a.ok;
  return a.worst > b.worst;
}

// max |v|, NaN if any element is NaN (std::max would drop it), +inf if any is infinite.
inline double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) {
    if (std::isnan(x)) return x;
    m = std::abs(x) > m ? std::abs(x) : m;
  }
  return m;
}

}  // namespace testing

// Checks anything with `ok` and `report` (a Comparison, a GradcheckResult), printing the report on failure.
#define REQUIRE_OK(expr)     \
  do {                       \
    const auto ok_ = (expr); \
    INFO(ok_.report);        \
    REQUIRE(ok_.ok);         \
  } while (0)
#define CHECK_OK(expr)       \
  do {                       \
    const auto ok_ = (expr); \
    INFO(ok_.report);        \
    CHECK(ok_.ok);           \
  } while (0)
