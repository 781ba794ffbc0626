// kernels/bf16.h and bf16 storage in the engine. The conversions are checked against a reference written here
// in double arithmetic (the bf16 values from their sign, exponent and mantissa fields, the nearest one found by
// search, ties to the even pattern), not against the bit arithmetic under test; the sweep covers every bf16
// pattern, the float patterns at and beside every midpoint between neighbouring bf16 values, and random floats.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/checkpoint.h"
#include "engine/nn/layers.h"
#include "engine/ops.h"
#include "engine/optim/ema.h"
#include "engine/optim/sgd.h"
#include "kernels/bf16.h"
#include "kernels/dtype.h"
#include "tests/app/app_test_util.h"
#include "tests/gradcheck.h"

using engine::Device;
using engine::DType;
using engine::Tensor;
using kernels::bf16;

static_assert(std::is_same_v<kernels::compute_t<bf16>, float>, "bf16 computes in float");

namespace {

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

bool is_nan_pattern(uint16_t b) { return (b & 0x7F80u) == 0x7F80u && (b & 0x7Fu) != 0; }

// The value of a finite bf16 pattern from its fields: (128 + m) * 2^(e - 134) for normals, m * 2^-133 for
// subnormals.
double bf16_value(uint16_t b) {
  const int e = (b >> 7) & 0xFF, m = b & 0x7F;
  const double mag = e == 0 ? std::ldexp(m, -133) : std::ldexp(128 + m, e - 134);
  return (b & 0x8000u) ? -mag : mag;
}

// The reference rounding. mags[p] is the magnitude of pattern p for every finite non-negative p (the patterns
// ascend with their values), then 2^128 standing for Inf (0x7F80): as IEEE 754 rounds, a value at or past the
// midpoint between the largest finite and 2^128 goes to Inf, and at the midpoint itself that is the tie to even.
class Reference {
 public:
  Reference() {
    for (uint32_t p = 0; p <= 0x7F7Fu; ++p) mags_.push_back(bf16_value(static_cast<uint16_t>(p)));
    mags_.push_back(std::ldexp(1.0, 128));
  }
  // The nearest bf16 to x (not NaN), ties to the even pattern, with x's sign (so -0 and negative values that
  // round to zero give -0).
  uint16_t nearest(double x) const {
    const uint16_t sign = std::signbit(x) ? 0x8000u : 0u;
    const double a = std::fabs(x);
    if (a >= mags_.back()) return sign | 0x7F80u;
    const size_t hi = static_cast<size_t>(std::upper_bound(mags_.begin(), mags_.end(), a) - mags_.begin());
    const size_t lo = hi - 1;  // mags_[0] = 0 <= a
    // 2a against the sum of the neighbours: both exact in double (the neighbours have at most 9 significant bits
    // together), so the midpoint comparison is exact.
    const double twice = 2 * a, sum = mags_[lo] + mags_[hi];
    const size_t pick = twice < sum ? lo : twice > sum ? hi : (lo % 2 == 0 ? lo : hi);
    return static_cast<uint16_t>(sign | pick);
  }

 private:
  std::vector<double> mags_;
};

const Reference& reference() {
  static const Reference r;
  return r;
}

// What a conversion of x must give: for NaN, a quiet NaN with x's sign; otherwise the nearest bf16.
bool conversion_ok(double x, uint16_t got) {
  if (std::isnan(x)) return is_nan_pattern(got) && (got & 0x0040u) && ((got >> 15) == (std::signbit(x) ? 1 : 0));
  return got == reference().nearest(x);
}

// Float bit patterns: every bf16 pattern as a float; for both signs and every finite bf16 p, the patterns one
// float ulp below, at and above the midpoint between p and the next larger magnitude (the largest finite's
// midpoint is the overflow threshold); and a million random patterns (fixed seed).
std::vector<uint32_t> float_sweep() {
  std::vector<uint32_t> v;
  for (uint32_t p = 0; p < 65536; ++p) v.push_back(p << 16);
  for (uint32_t sign : {0u, 0x8000u})
    for (uint32_t p = 0; p <= 0x7F7Fu; ++p) {
      const uint32_t mid = ((sign | p) << 16) | 0x8000u;
      v.insert(v.end(), {mid - 1, mid, mid + 1});
    }
  std::mt19937_64 rng(20261202);
  for (int i = 0; i < 1000000; ++i) v.push_back(static_cast<uint32_t>(rng()));
  return v;
}

// Doubles: every finite bf16 value; for every midpoint m between neighbouring bf16 magnitudes (both signs), m,
// the doubles next to it, and m * (1 +- 2^-30), which round to m itself as floats (so converting through float
// would round twice and meet a false tie); values beyond float's range and below its subnormals; and random
// doubles over the whole bf16 exponent range and past it.
std::vector<double> double_sweep() {
  std::vector<double> v;
  for (uint32_t p = 0; p < 65536; ++p)
    if ((p & 0x7F80u) != 0x7F80u) v.push_back(bf16_value(static_cast<uint16_t>(p)));
  const double inf = std::numeric_limits<double>::infinity();
  for (double sign : {1.0, -1.0})
    for (uint32_t p = 0; p <= 0x7F7Fu; ++p) {
      const double lo = bf16_value(static_cast<uint16_t>(p));
      const double hi = p == 0x7F7Fu ? std::ldexp(1.0, 128) : bf16_value(static_cast<uint16_t>(p + 1));
      const double m = sign * (lo + hi) / 2;
      v.insert(v.end(), {m, std::nextafter(m, inf), std::nextafter(m, -inf), m * (1 + std::ldexp(1.0, -30)),
                         m * (1 - std::ldexp(1.0, -30))});
    }
  v.insert(v.end(), {inf, -inf, std::numeric_limits<double>::quiet_NaN(), -std::numeric_limits<double>::quiet_NaN(),
                     std::numeric_limits<double>::max(), -std::numeric_limits<double>::max(), 1e39, -1e39, 1e-50,
                     -1e-50, std::numeric_limits<double>::denorm_min(), 0.0, -0.0,
                     static_cast<double>(std::numeric_limits<float>::max()), std::ldexp(1.0, 128),
                     std::nextafter(std::ldexp(1.0, 128), 0.0)});
  std::mt19937_64 rng(977);
  std::uniform_real_distribution<double> mantissa(1.0, 2.0);
  std::uniform_int_distribution<int> exponent(-160, 140);
  for (int i = 0; i < 300000; ++i) v.push_back((rng() & 1 ? -1 : 1) * std::ldexp(mantissa(rng), exponent(rng)));
  return v;
}

// Checks got[i] against the reference for input x(i); on failure names the count and the first few.
template <class X, class Got>
void require_conversions(size_t n, X&& x, Got&& got, const char* what) {
  size_t bad = 0;
  std::string first;
  for (size_t i = 0; i < n; ++i) {
    const double xi = x(i);
    const uint16_t g = got(i);
    if (conversion_ok(xi, g)) continue;
    if (bad++ < 5)
      first += std::string("\n  ") + std::to_string(xi) + " (" + hex(bits_of(static_cast<float>(xi))) +
               " as float) -> " + hex(g) + ", expected " +
               (std::isnan(xi) ? std::string("a quiet NaN") : hex(reference().nearest(xi)));
  }
  INFO(what << ": " << bad << " of " << n << " conversions wrong" << first);
  REQUIRE(bad == 0);
}

Tensor f32_tensor(const std::vector<uint32_t>& patterns) {
  Tensor t = Tensor::empty({static_cast<int64_t>(patterns.size())}, DType::f32);
  std::memcpy(t.raw_data(), patterns.data(), patterns.size() * 4);
  return t;
}
Tensor f64_tensor(const std::vector<double>& values) {
  Tensor t = Tensor::empty({static_cast<int64_t>(values.size())}, DType::f64);
  std::memcpy(t.raw_data(), values.data(), values.size() * 8);
  return t;
}
// Runs f, which must throw the engine's error for a bf16 tensor: starting with "<op>: ", saying that bf16 is
// storage only so far and how to convert.
void require_compute_only(const std::string& op, const std::function<void()>& f) {
  try {
    f();
  } catch (const engine::EngineError& e) {
    const std::string m = e.what();
    INFO(m);
    CHECK(m.rfind(op + ": ", 0) == 0);
    CHECK(m.find("is bfloat16, but this op computes in float32 or float64 only") != std::string::npos);
    CHECK(m.find("engine::cast(t, DType::f32)") != std::string::npos);
    return;
  }
  FAIL(op << ": no error for a bfloat16 tensor");
}

Tensor every_bf16_pattern() {
  Tensor t = Tensor::empty({65536}, DType::bf16);
  bf16* p = t.data<bf16>();
  for (uint32_t i = 0; i < 65536; ++i) p[i] = bf16{static_cast<uint16_t>(i)};
  return t;
}

}  // namespace

TEST_CASE("bf16: float to bf16 rounds to nearest even over every pattern and every midpoint", "[bf16][kernels]") {
  const std::vector<uint32_t> xs = float_sweep();
  require_conversions(
      xs.size(), [&](size_t i) { return static_cast<double>(float_of(xs[i])); },
      [&](size_t i) { return kernels::bf16_from_float(float_of(xs[i])).bits; }, "bf16_from_float");
  require_conversions(
      xs.size(), [&](size_t i) { return static_cast<double>(float_of(xs[i])); },
      [&](size_t i) { return kernels::convert_value<bf16>(float_of(xs[i])).bits; }, "convert_value<bf16>(float)");
}

TEST_CASE("bf16: double to bf16 is rounded once and bf16 to float or double is exact", "[bf16][kernels]") {
  const std::vector<double> xs = double_sweep();
  require_conversions(
      xs.size(), [&](size_t i) { return xs[i]; }, [&](size_t i) { return kernels::bf16_from_double(xs[i]).bits; },
      "bf16_from_double");
  for (uint32_t p = 0; p < 65536; ++p) {
    const bf16 b{static_cast<uint16_t>(p)};
    const float f = kernels::bf16_to_float(b);
    if (is_nan_pattern(b.bits)) {
      REQUIRE(std::isnan(f));
      REQUIRE(std::isnan(kernels::convert_value<double>(b)));
      continue;
    }
    const double expect = (p & 0x7FFFu) == 0x7F80u ? ((p & 0x8000u) ? -INFINITY : INFINITY) : bf16_value(b.bits);
    INFO("pattern " << hex(p));
    REQUIRE(static_cast<double>(f) == expect);
    REQUIRE(std::signbit(f) == ((p & 0x8000u) != 0));
    REQUIRE(kernels::convert_value<double>(b) == expect);
    REQUIRE(kernels::to_compute(b) == f);
  }
}

TEST_CASE("bf16: NaN Inf signed zero the largest finite overflow and subnormals explicitly", "[bf16][kernels]") {
  auto from = [](uint32_t float_pattern) { return kernels::bf16_from_float(float_of(float_pattern)).bits; };
  // NaN: quiet, sign kept, never Inf even when its payload lies only in the dropped half.
  REQUIRE(from(0x7FC00000u) == 0x7FC0u);
  REQUIRE(from(0xFFC00000u) == 0xFFC0u);
  REQUIRE(from(0x7F800001u) == 0x7FC0u);  // signalling NaN with a low payload
  REQUIRE(from(0xFF810000u) == 0xFFC1u);  // signalling NaN, payload kept, made quiet
  REQUIRE(from(0x7FFFFFFFu) == 0x7FFFu);  // the largest payload does not carry into the sign
  // Inf and zero.
  REQUIRE(from(0x7F800000u) == 0x7F80u);
  REQUIRE(from(0xFF800000u) == 0xFF80u);
  REQUIRE(from(0x00000000u) == 0x0000u);
  REQUIRE(from(0x80000000u) == 0x8000u);
  // The largest finite bf16 (0x7F7F = 3.3895314e38), the overflow threshold (its midpoint with 2^128) and past it.
  REQUIRE(from(0x7F7F0000u) == 0x7F7Fu);
  REQUIRE(from(0x7F7F7FFFu) == 0x7F7Fu);
  REQUIRE(from(0x7F7F8000u) == 0x7F80u);  // the tie goes to the even pattern: Inf
  REQUIRE(from(0x7F7FFFFFu) == 0x7F80u);  // FLT_MAX
  REQUIRE(from(0xFF7F7FFFu) == 0xFF7Fu);
  REQUIRE(from(0xFF7F8000u) == 0xFF80u);
  // Ties to even among normals: 1 + 2^-8 lies between 0x3F80 and 0x3F81, 1 + 3 * 2^-8 between 0x3F81 and 0x3F82.
  REQUIRE(from(bits_of(1.0f)) == 0x3F80u);
  REQUIRE(from(bits_of(1.0f + 0x1p-8f)) == 0x3F80u);
  REQUIRE(from(bits_of(1.0f + 0x3p-8f)) == 0x3F82u);
  REQUIRE(from(bits_of(-1.0f - 0x3p-8f)) == 0xBF82u);
  REQUIRE(from(bits_of(1.0f + 0x1p-8f + 0x1p-23f)) == 0x3F81u);  // just past the tie
  // Subnormals: 2^-133 is the smallest bf16; half of it ties to 0; 1.5 of it ties up to 2; the largest subnormal
  // rounds up into the smallest normal; float subnormals far below bf16's give (signed) zero.
  REQUIRE(from(0x00010000u) == 0x0001u);
  REQUIRE(from(0x00008000u) == 0x0000u);
  REQUIRE(from(0x00008001u) == 0x0001u);
  REQUIRE(from(0x00018000u) == 0x0002u);
  REQUIRE(from(0x007F8000u) == 0x0080u);
  REQUIRE(from(0x00000001u) == 0x0000u);
  REQUIRE(from(0x80000001u) == 0x8000u);
  REQUIRE(kernels::bf16_to_float(bf16{0x0001u}) == std::ldexp(1.0f, -133));
  // From double: beyond float's range and below its subnormals.
  auto from_d = [](double d) { return kernels::bf16_from_double(d).bits; };
  REQUIRE(from_d(1e39) == 0x7F80u);
  REQUIRE(from_d(-1e300) == 0xFF80u);
  REQUIRE(from_d(1e-50) == 0x0000u);
  REQUIRE(from_d(-1e-50) == 0x8000u);
  REQUIRE(from_d(std::nan("")) == 0x7FC0u);
  REQUIRE(from_d(-std::nan("")) == 0xFFC0u);
  // The double-rounding trap: just above the tie 1 + 2^-8, this rounds to the tie as a float.
  REQUIRE(from_d(1.0 + 0x1p-8 + 0x1p-40) == 0x3F81u);
  REQUIRE(from_d(1.0 + 0x3p-8 - 0x1p-40) == 0x3F81u);
}

TEST_CASE("bf16: bf16 to float to bf16 is the identity for every non-NaN pattern", "[bf16][kernels]") {
  size_t bad = 0;
  for (uint32_t p = 0; p < 65536; ++p) {
    const bf16 b{static_cast<uint16_t>(p)};
    const uint16_t via_float = kernels::bf16_from_float(kernels::bf16_to_float(b)).bits;
    const uint16_t via_double = kernels::bf16_from_double(kernels::convert_value<double>(b)).bits;
    if (is_nan_pattern(b.bits))
      bad += !(is_nan_pattern(via_float) && is_nan_pattern(via_double) && (via_float >> 15) == (p >> 15));
    else
      bad += via_float != p || via_double != p;
  }
  REQUIRE(bad == 0);
}

TEST_CASE("bf16: Tensor to bf16 and back on the CPU matches the scalar conversions", "[bf16][tensor]") {
  engine::DetectAnomalyGuard nan_on_purpose(false);
  REQUIRE(engine::dtype_size(DType::bf16) == 2);
  REQUIRE(std::string(engine::dtype_name(DType::bf16)) == "bfloat16");
  REQUIRE(engine::compute_dtype(DType::bf16) == DType::f32);
  REQUIRE(engine::dtype_of<bf16>() == DType::bf16);

  const std::vector<uint32_t> xs = float_sweep();
  const Tensor t = f32_tensor(xs).to(DType::bf16);
  REQUIRE(t.dtype() == DType::bf16);
  REQUIRE(t.str() == "bfloat16[" + std::to_string(xs.size()) + "] on cpu");
  const bf16* p = t.data<bf16>();
  require_conversions(
      xs.size(), [&](size_t i) { return static_cast<double>(float_of(xs[i])); }, [&](size_t i) { return p[i].bits; },
      "Tensor::to(bf16) from float32");

  // Back to float32 and float64: exact.
  const Tensor back = t.to(DType::f32), back64 = t.to(DType::f64);
  const float* f = back.data<float>();
  const double* d = back64.data<double>();
  size_t bad = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const float expect = kernels::bf16_to_float(p[i]);
    bad += std::isnan(expect) ? !(std::isnan(f[i]) && std::isnan(d[i]))
                              : bits_of(f[i]) != bits_of(expect) || d[i] != static_cast<double>(expect);
  }
  REQUIRE(bad == 0);

  // From float64: rounded once.
  const std::vector<double> ds = double_sweep();
  const Tensor t64 = f64_tensor(ds).to(DType::bf16);
  const bf16* q = t64.data<bf16>();
  require_conversions(
      ds.size(), [&](size_t i) { return ds[i]; }, [&](size_t i) { return q[i].bits; }, "Tensor::to(bf16) from float64");

  // The factories, fill_, to_vector and item go through the same conversions.
  const Tensor v =
      Tensor::from_vector({1.0, -2.5, 1.0 + 0x1p-8, 1.0 + 0x1p-8 + 0x1p-40, 1e39, 3.0e-41}, {2, 3}, DType::bf16);
  REQUIRE(v.shape() == engine::Shape{2, 3});
  const std::vector<double> got = v.to_vector();
  REQUIRE(got.size() == 6);
  REQUIRE(got[0] == 1.0);
  REQUIRE(got[1] == -2.5);
  REQUIRE(got[2] == 1.0);
  REQUIRE(got[3] == 1.0 + 0x1p-7);
  REQUIRE(std::isinf(got[4]));
  REQUIRE(got[5] == bf16_value(kernels::bf16_from_double(3.0e-41).bits));
  Tensor filled = Tensor::full({3}, 1.0 + 0x3p-8, DType::bf16);
  REQUIRE(filled.to_vector() == std::vector<double>(3, 1.0 + 0x1p-6));
  filled.fill_(-0.0);
  for (int i = 0; i < 3; ++i) REQUIRE(filled.data<bf16>()[i].bits == 0x8000u);
  REQUIRE(Tensor::zeros({4}, DType::bf16).to_vector() == std::vector<double>(4, 0.0));
  REQUIRE(Tensor::full({1}, 0.1, DType::bf16).item() == bf16_value(kernels::bf16_from_double(0.1).bits));
  // int32 (labels) to bf16 on the host: 257 and 259 are ties at bf16's step of 2 there.
  const Tensor labels = Tensor::from_vector({257, 259, -3}, {3}, DType::i32).to(DType::bf16);
  REQUIRE(labels.to_vector() == std::vector<double>{256, 260, -3});
  REQUIRE_THROWS_WITH(Tensor::zeros({2}, DType::i32),
                      Catch::Contains("fill_: needs a float32, float64 or bfloat16 tensor, got int32"));
}

TEST_CASE("bf16: the compute-only ops refuse bf16 with their name and the cast to use", "[bf16][ops][errors]") {
  // The activation ops compute bf16 (the op table runs them on bf16 backends); the loss, the optimizer and the
  // weight average take float only (mixed precision keeps the loss, the masters and their state in float32).
  const Tensor x2 = Tensor::zeros({2, 3}, DType::bf16);
  const Tensor labels = Tensor::from_vector({0, 1}, {2}, DType::i32);
  require_compute_only("cross_entropy", [&] { engine::cross_entropy(x2, labels); });
  engine::nn::Linear lin(3, 4);
  lin.to(DType::bf16);
  REQUIRE(lin.weight.dtype() == DType::bf16);
  require_compute_only("SGD", [&] { engine::optim::SGD({lin.weight}, engine::optim::SgdOptions{}); });
  require_compute_only("EMA", [&] { engine::optim::ModelEma(lin, 0.9); });
  // The dispatcher itself, the net under every compute-only op's kernel call.
  require_compute_only("some_op", [] { engine::dispatch_compute("some_op", DType::bf16, [](auto) {}); });
  REQUIRE_THROWS_WITH(engine::dispatch_compute("some_op", DType::i32, [](auto) {}),
                      Catch::Contains("some_op: the input must be float32 or float64, got int32"));
  // Mixed dtypes at an op stay an error naming both (the modules cast, not the ops).
  const Tensor x4f = Tensor::zeros({2, 2, 4, 4}, DType::f32), w4 = Tensor::zeros({3, 2, 3, 3}, DType::bf16);
  REQUIRE_THROWS_WITH(engine::conv2d(x4f, w4, Tensor(), {}),
                      Catch::StartsWith("conv2d: ") && Catch::Contains("bfloat16"));
  // int32 is refused by the activation ops too.
  REQUIRE_THROWS_WITH(engine::relu(labels), Catch::Contains("relu: x must be float32, float64 or bfloat16"));
}

TEST_CASE("bf16: safetensors stores BF16 and reads it back bit for bit", "[bf16][checkpoint]") {
  apptest::TempDir dir;
  const Tensor all = every_bf16_pattern();
  engine::SafetensorsFile f;
  f.tensors.emplace_back("all", engine::StoredTensor::from(all));
  REQUIRE(f.tensors[0].second.dtype == "BF16");
  REQUIRE(f.tensors[0].second.bytes.size() == 2 * 65536);
  // Little-endian 16-bit words: 0x3F80 (1.0) is the bytes 80 3F.
  REQUIRE(static_cast<unsigned char>(f.tensors[0].second.bytes[2 * 0x3F80]) == 0x80);
  REQUIRE(static_cast<unsigned char>(f.tensors[0].second.bytes[2 * 0x3F80 + 1]) == 0x3F);
  engine::write_safetensors(dir / "b.safetensors", f);
  const engine::SafetensorsFile back = engine::read_safetensors(dir / "b.safetensors");
  const Tensor t = back.find("all")->to_tensor();
  REQUIRE(t.dtype() == DType::bf16);
  REQUIRE(t.shape() == engine::Shape{65536});
  REQUIRE(std::memcmp(t.raw_data(), all.raw_data(), 2 * 65536) == 0);

  // A bf16 model's checkpoint loads into a float32 model exactly (every bf16 value is a float) and into a bf16
  // model bit for bit.
  engine::nn::Linear src(3, 4), into_f32(3, 4), into_bf16(3, 4);
  src.to(DType::bf16);
  into_bf16.to(DType::bf16);
  engine::save_checkpoint(dir / "m.safetensors", src, nullptr, {});
  engine::load_checkpoint(dir / "m.safetensors", into_f32);
  engine::load_checkpoint(dir / "m.safetensors", into_bf16);
  REQUIRE(into_f32.weight.dtype() == DType::f32);
  REQUIRE(into_f32.weight.to_vector() == src.weight.to_vector());
  REQUIRE(std::memcmp(into_bf16.weight.raw_data(), src.weight.raw_data(), 2 * 12) == 0);
  REQUIRE(std::memcmp(into_bf16.bias.raw_data(), src.bias.raw_data(), 2 * 4) == 0);
}

TEST_CASE("bf16: CUDA conversions match the CPU over the same sweep", "[bf16][cuda]") {
  SKIP_WITHOUT_CUDA();
  engine::DetectAnomalyGuard nan_on_purpose(false);
  auto same_bits = [](const Tensor& a, const Tensor& b) {
    REQUIRE(a.dtype() == b.dtype());
    REQUIRE(a.numel() == b.numel());
    return std::memcmp(a.raw_data(), b.raw_data(), a.numel() * engine::dtype_size(a.dtype())) == 0;
  };
  // For float64 results a NaN need only be a NaN: a GPU's float -> double conversion may not keep its sign.
  auto same_f64 = [](const Tensor& a, const Tensor& b) {
    const std::vector<double> x = a.to_vector(), y = b.to_vector();
    REQUIRE(x.size() == y.size());
    size_t bad = 0;
    for (size_t i = 0; i < x.size(); ++i)
      bad += std::isnan(y[i]) ? !std::isnan(x[i]) : std::memcmp(&x[i], &y[i], sizeof(double)) != 0;
    return bad == 0;
  };
  const Tensor f = f32_tensor(float_sweep());
  const Tensor cpu = f.to(DType::bf16);
  const Tensor cuda = f.to(Device::cuda()).to(DType::bf16);
  REQUIRE(same_bits(cuda.to(Device::cpu()), cpu));
  // Back to float: the NaNs too, since both sides shift the same bits.
  REQUIRE(same_bits(cuda.to(DType::f32).to(Device::cpu()), cpu.to(DType::f32)));
  const Tensor all = every_bf16_pattern();
  REQUIRE(same_f64(all.to(Device::cuda()).to(DType::f64).to(Device::cpu()), all.to(DType::f64)));
  const Tensor d = f64_tensor(double_sweep());
  REQUIRE(same_bits(d.to(Device::cuda()).to(DType::bf16).to(Device::cpu()), d.to(DType::bf16)));
  REQUIRE(same_bits(Tensor::full({1000}, 1.0 + 0x3p-8, DType::bf16, Device::cuda()).to(Device::cpu()),
                    Tensor::full({1000}, 1.0 + 0x3p-8, DType::bf16)));
}
