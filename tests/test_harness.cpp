// The harness proves its teeth: every case here must make a comparison or a gradient check FAIL. A NaN or Inf
// on either side, a wrong or non-finite backward, a "device result" that is all NaN, one NaN hidden in a
// million elements: each is caught and named (index, got, want). The last cases carry Catch's [!shouldfail]
// tag: they pass only if the assertion macros the suite uses really fail.
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <limits>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "tests/compare.h"
#include "tests/gradcheck.h"
#include "tests/require_close.h"

using namespace engine;
using testing::compare;
using testing::compare_close;
using testing::compare_scaled;
using testing::Comparison;
using testing::NonFinite;

namespace {
const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

std::vector<double> ramp(size_t n) {
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = 0.001 * static_cast<double>(i % 1000) - 0.5;
  return v;
}

std::vector<double> with(std::vector<double> v, size_t i, double value) {
  v[i] = value;
  return v;
}

Tensor with(const Tensor& t, int64_t i, double value) {
  return Tensor::from_vector(with(t.to_vector(), static_cast<size_t>(i), value), t.shape(), t.dtype(), t.device());
}

// y = 2x, with whatever backward the test claims for it (built with engine::record, as the real ops are).
Tensor doubled(const Tensor& x, std::function<Tensor(const Tensor& g)> backward) {
  Tensor y;
  {
    NoGradGuard ng;
    y = scale(x, 2.0);
  }
  record(y, "test_doubled", {x},
         [backward](const Tensor& g, const std::vector<bool>&) { return std::vector<Tensor>{backward(g)}; });
  return y;
}

void require_fails_at(const Comparison& c, int64_t index) {
  INFO(c.report);
  REQUIRE_FALSE(c.ok);
  REQUIRE(c.index == index);
  REQUIRE(!std::isnan(c.worst));
}

}  // namespace

TEST_CASE("harness: finite values pass within the tolerance and fail just outside it", "[harness]") {
  const std::vector<double> want{1.0, -2.0, 1000.0, 0.0};
  // |got - want| <= 1e-3 * max(1, |want|): 0.9 of the tolerance passes, 1.1 fails.
  REQUIRE(compare_scaled({1.0009, -2.0018, 1000.9, 0.0}, want, 1e-3).ok);
  require_fails_at(compare_scaled({1.0, -2.0, 1001.1, 0.0}, want, 1e-3), 2);
  // atol + rtol * |want|
  REQUIRE(compare_close({1.5, -2.5, 1000.0, 0.4}, want, 0.5, 0.0).ok);
  require_fails_at(compare_close({1.0, -2.0, 1000.0, 0.6}, want, 0.5, 0.0), 3);
  // A zero tolerance passes equal values only.
  REQUIRE(compare_scaled(want, want, 0.0).ok);
  require_fails_at(compare_scaled(with(want, 1, std::nextafter(-2.0, 0.0)), want, 0.0), 1);
  // The worst element is named, not the first one outside the tolerance.
  const Comparison c = compare_close({1.2, -2.0, 1003.0, 0.0}, want, 0.1, 0.0);
  require_fails_at(c, 2);
  REQUIRE(c.failures == 2);
  REQUIRE(c.worst == Approx(30.0));
  REQUIRE_THAT(c.report, Catch::Contains("element 2") && Catch::Contains("got 1003") && Catch::Contains("want 1000"));
  // Different sizes never compare equal.
  REQUIRE_FALSE(compare_scaled({1.0}, {1.0, 2.0}, 1.0).ok);
}

TEST_CASE("harness: a NaN or Inf on either side fails, and is reported before any finite error", "[harness]") {
  const std::vector<double> want{0.5, -1.0, 2.0, 3.0, 4.0};
  for (double bad : {kNaN, kInf, -kInf}) {
    INFO("non-finite value " << bad);
    // On the result side, on the reference side, and on both (the same value twice is not allowed by default).
    require_fails_at(compare_scaled(with(want, 3, bad), want, 1e-6), 3);
    require_fails_at(compare_scaled(want, with(want, 3, bad), 1e-6), 3);
    require_fails_at(compare_scaled(with(want, 3, bad), with(want, 3, bad), 1e-6), 3);
    require_fails_at(compare_close(with(want, 3, bad), want, 1e6, 1e6), 3);  // however loose the tolerance
    // A larger finite error elsewhere does not hide it, before or after it.
    const Comparison c = compare_scaled(with(with(want, 0, 1e300), 3, bad), want, 1e-6);
    require_fails_at(c, 3);
    REQUIRE(c.worst_nonfinite);
    REQUIRE(c.failures == 2);
    REQUIRE(c.nonfinite == 1);
    require_fails_at(compare_scaled(with(with(want, 4, 1e300), 3, bad), want, 1e-6), 3);
    REQUIRE_THAT(c.report, Catch::Contains("first non-finite element 3"));
  }
  // Inf on one side, NaN on the reference side.
  require_fails_at(compare_scaled(with(want, 1, kInf), with(want, 1, kNaN), 1e-6), 1);
  // The same non-finite value in the same place passes only when the caller allows it; any other pairing fails.
  const std::vector<double> nan_inf{kNaN, kInf, -kInf, 1.0};
  REQUIRE(compare_scaled(nan_inf, nan_inf, 1e-12, NonFinite::allow_matching).ok);
  REQUIRE_FALSE(compare_scaled(nan_inf, nan_inf, 1e-12).ok);
  require_fails_at(compare_scaled({kNaN, kInf, kInf, 1.0}, nan_inf, 1e-12, NonFinite::allow_matching), 2);
  require_fails_at(compare_scaled({kInf, kInf, -kInf, 1.0}, nan_inf, 1e-12, NonFinite::allow_matching), 0);
  require_fails_at(compare_scaled({kNaN, kInf, -kInf, kNaN}, nan_inf, 1e-12, NonFinite::allow_matching), 3);
  require_fails_at(compare_scaled({0.0, kInf, -kInf, 1.0}, nan_inf, 1e-12, NonFinite::allow_matching), 0);
  // A NaN or infinite tolerance would accept anything: it fails.
  require_fails_at(compare(want, with(want, 2, 2.5), [](size_t) { return kNaN; }), 2);
  require_fails_at(compare(want, with(want, 2, 2.5), [](size_t) { return kInf; }), 2);
}

TEST_CASE("harness: one NaN in a million elements, at an arbitrary index, fails and is named", "[harness]") {
  const size_t n = 1000000;
  const std::vector<double> ref = ramp(n);
  for (size_t at : {size_t(0), size_t(654321), n - 1}) {
    INFO("NaN at " << at);
    const Comparison got_side = compare_close(with(ref, at, kNaN), ref, 1e-12, 1e-12);
    require_fails_at(got_side, static_cast<int64_t>(at));
    REQUIRE(got_side.failures == 1);
    REQUIRE_THAT(got_side.report, Catch::Contains("1 of 1000000") && Catch::Contains("element " + std::to_string(at)));
    require_fails_at(compare_close(ref, with(ref, at, kNaN), 1e-12, 1e-12), static_cast<int64_t>(at));
    // Through the tensor helpers the tests use.
    const Tensor r = Tensor::from_vector(ref, {1000, 1000}, DType::f64);
    require_fails_at(testing::close(with(r, static_cast<int64_t>(at), kNaN), r, 1e-12, 1e-12),
                     static_cast<int64_t>(at));
    REQUIRE(testing::close_ratio(with(r, static_cast<int64_t>(at), kInf), r, 1e-12, 1e-12) == kInf);
  }
}

TEST_CASE("harness: a device result that is all NaN fails against a finite reference", "[harness]") {
  const Tensor ref = Tensor::from_vector(ramp(4096), {4, 4, 16, 16}, DType::f32);
  for (DType dt : {DType::f32, DType::f64}) {
    const Tensor got = Tensor::full(ref.shape(), kNaN, dt);  // what a kernel that never ran may leave
    const Comparison c = testing::close(got, ref.to(dt), 1e-5, 1e-4);
    require_fails_at(c, 0);
    REQUIRE(c.failures == 4096);
    REQUIRE(c.nonfinite == 4096);
    // close_ratio, which the CUDA tests call as close_ratio(...) <= 1, is +inf, never NaN.
    const double r = testing::close_ratio(got, ref.to(dt), 1e-5, 1e-4);
    REQUIRE(r == kInf);
    REQUIRE_FALSE(r <= 1);
  }
  REQUIRE_FALSE(testing::close(Tensor::zeros({2, 3}), Tensor::zeros({3, 2}), 1, 1).ok);
}

TEST_CASE("harness: max_abs keeps a NaN and an Inf, where std::max drops a NaN", "[harness]") {
  REQUIRE(testing::max_abs({1.0, -3.0, 2.0}) == 3.0);
  REQUIRE(std::isnan(testing::max_abs({1.0, kNaN, 2.0})));
  REQUIRE(std::isnan(testing::max_abs({kNaN, 5.0})));
  REQUIRE(testing::max_abs({1.0, -kInf}) == kInf);
  Comparison pass, fail_small, fail_big;
  fail_small.ok = fail_big.ok = false;
  fail_small.worst = 2, fail_big.worst = kInf;
  REQUIRE(testing::worse_than(fail_small, pass));
  REQUIRE(testing::worse_than(fail_big, fail_small));
  REQUIRE_FALSE(testing::worse_than(pass, fail_small));
}

TEST_CASE("gradcheck harness: a correct custom op passes", "[harness][gradcheck]") {
  Tensor x = testing::rand_leaf({5}, 3);
  const auto res = testing::gradcheck([&] { return doubled(x, [](const Tensor& g) { return scale(g, 2.0); }); }, {x});
  INFO(res.report);
  REQUIRE(res.ok);
}

TEST_CASE("gradcheck harness fails on a deliberately wrong backward", "[harness][gradcheck]") {
  Tensor x = testing::rand_leaf({5}, 3);
  // y = 2x, but the recorded backward claims dy/dx = 3.
  auto res = testing::gradcheck([&] { return doubled(x, [](const Tensor& g) { return scale(g, 3.0); }); }, {x});
  REQUIRE_FALSE(res.ok);
  REQUIRE(res.worst_error > 0.3);
  REQUIRE_THAT(res.report, Catch::Contains("analytic"));
  // Right everywhere but one element.
  res =
      testing::gradcheck([&] { return doubled(x, [](const Tensor& g) { return with(scale(g, 2.0), 2, 0.0); }); }, {x});
  REQUIRE_FALSE(res.ok);
  REQUIRE_THAT(res.report, Catch::Contains("index 2"));
  // No gradient at all where there should be one.
  res = testing::gradcheck([&] { return doubled(x, [](const Tensor&) { return Tensor(); }); }, {x});
  REQUIRE_FALSE(res.ok);
}

TEST_CASE("gradcheck harness fails on a backward that returns NaN or Inf", "[harness][gradcheck]") {
  Tensor x = testing::rand_leaf({2, 3, 4}, 4);
  for (double bad : {kNaN, kInf, -kInf}) {
    INFO("backward returns " << bad);
    // One element of an otherwise right gradient.
    auto res = testing::gradcheck(
        [&] { return doubled(x, [bad](const Tensor& g) { return with(scale(g, 2.0), 17, bad); }); }, {x});
    INFO(res.report);
    REQUIRE_FALSE(res.ok);
    REQUIRE(res.worst_error == kInf);
    REQUIRE_THAT(res.report, Catch::Contains("first non-finite element") && Catch::Contains("index 17"));
    // Every element.
    res = testing::gradcheck([&] { return doubled(x, [bad](const Tensor& g) { return scale(g, bad); }); }, {x});
    REQUIRE_FALSE(res.ok);
    REQUIRE_THAT(res.report, Catch::Contains("index 0"));
  }
  // The second of two inputs is the bad one: it is the one reported, whatever the first input's error.
  Tensor a = testing::rand_leaf({3}, 5), b = testing::rand_leaf({3}, 6);
  auto res = testing::gradcheck(
      [&] {
        return add(doubled(a, [](const Tensor& g) { return scale(g, 2.5); }),
                   doubled(b, [](const Tensor& g) { return with(scale(g, 2.0), 1, kNaN); }));
      },
      {a, b});
  REQUIRE_FALSE(res.ok);
  REQUIRE_THAT(res.report, Catch::Contains("input 1") && Catch::Contains("index 1"));
}

TEST_CASE("gradcheck harness fails on a forward that returns NaN (the numeric side)", "[harness][gradcheck]") {
  Tensor x = testing::rand_leaf({6}, 7);
  auto f = [&] {
    Tensor y = doubled(x, [](const Tensor& g) { return scale(g, 2.0); });
    NoGradGuard ng;
    y.copy_(with(y.detach(), 4, kNaN));  // the output, not the gradient, is poisoned
    return y;
  };
  const auto res = testing::gradcheck(f, {x});
  INFO(res.report);
  REQUIRE_FALSE(res.ok);
  REQUIRE(res.worst_error == kInf);
}

// The assertion macros themselves: these test cases pass only because their assertions fail.
TEST_CASE("harness: require_close fails on one NaN", "[harness][!shouldfail]") {
  testing::require_close({1.0, kNaN, 3.0}, {1.0, 2.0, 3.0}, 1e-3);
}

TEST_CASE("harness: require_close fails on a NaN in the reference", "[harness][!shouldfail]") {
  testing::require_close({1.0, 2.0, 3.0}, {1.0, 2.0, kNaN}, 1e-3);
}

TEST_CASE("harness: REQUIRE_GRADCHECK fails on a backward that returns NaN", "[harness][gradcheck][!shouldfail]") {
  Tensor x = testing::rand_leaf({4}, 8);
  REQUIRE_GRADCHECK(
      testing::gradcheck([&] { return doubled(x, [](const Tensor& g) { return scale(g, kNaN); }); }, {x}));
}

TEST_CASE("harness: close_ratio(...) <= 1 fails on an all-NaN device result", "[harness][!shouldfail]") {
  const Tensor ref = Tensor::full({3, 3}, 1.0, DType::f32);
  CHECK(testing::close_ratio(Tensor::full({3, 3}, kNaN, DType::f32), ref, 1e-5, 1e-4) <= 1);
}
