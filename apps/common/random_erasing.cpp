#include "apps/common/random_erasing.h"

#include <cmath>

#include "engine/error.h"

namespace app {

namespace {
constexpr uint64_t kGamma = 0x9E3779B97F4A7C15ull;  // splitmix64's increment
constexpr uint64_t kStreamErase = 3;                // beside data.h's epoch-plan and validation-split streams

// SplitMix64 as a counter-based generator: draw k of a key is mix64(key + k * gamma).
class CounterRng {
 public:
  explicit CounterRng(uint64_t key) : key_(key) {}
  uint64_t next() { return kernels::mix64(key_ + (++counter_) * kGamma); }
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1), 53 bits
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Uniform in [0, bound) by multiply-shift; the bias is below bound / 2^64.
  int64_t below(int64_t bound) {
    return static_cast<int64_t>((static_cast<unsigned __int128>(next()) * static_cast<uint64_t>(bound)) >> 64);
  }

 private:
  uint64_t key_, counter_ = 0;
};

uint64_t image_key(uint64_t seed, int64_t epoch, int64_t position) {
  uint64_t k = kernels::mix64(seed + kGamma);
  k = kernels::mix64(k ^ (kStreamErase * 0xD1B54A32D192ED03ull));
  k = kernels::mix64(k + static_cast<uint64_t>(epoch) * kGamma);
  return kernels::mix64(k ^ (static_cast<uint64_t>(position) * 0xAEF17502108EF2D9ull));
}
}  // namespace

void draw_erase_rect(const RandomErasing& re, uint64_t seed, int64_t epoch, int64_t position, int out_h, int out_w,
                     kernels::SampleSpec& spec) {
  ENGINE_CHECK(re.p >= 0 && re.p <= 1, "random erasing: probability ", re.p, " is outside [0, 1]");
  ENGINE_CHECK(
      re.area_lo > 0 && re.area_lo <= re.area_hi && re.area_hi <= 1 && re.aspect_lo > 0 && re.aspect_lo <= re.aspect_hi,
      "random erasing: area [", re.area_lo, ", ", re.area_hi, "] or aspect [", re.aspect_lo, ", ", re.aspect_hi,
      "] is not a valid range");
  spec.erase_y = spec.erase_x = spec.erase_h = spec.erase_w = 0;
  CounterRng rng(image_key(seed, epoch, position));
  spec.erase_key = static_cast<uint32_t>(rng.next() >> 32);
  if (!(rng.uniform() < re.p)) return;
  const double area = static_cast<double>(out_h) * out_w;
  const double log_lo = std::log(re.aspect_lo), log_hi = std::log(re.aspect_hi);
  for (int attempt = 0; attempt < 10; ++attempt) {  // torchvision's 10 attempts
    const double target = area * rng.uniform(re.area_lo, re.area_hi);
    const double aspect = std::exp(rng.uniform(log_lo, log_hi));
    const int h = static_cast<int>(std::lround(std::sqrt(target * aspect)));
    const int w = static_cast<int>(std::lround(std::sqrt(target / aspect)));
    if (!(h < out_h && w < out_w) || h < 1 || w < 1) continue;
    spec.erase_y = static_cast<int32_t>(rng.below(out_h - h + 1));
    spec.erase_x = static_cast<int32_t>(rng.below(out_w - w + 1));
    spec.erase_h = h;
    spec.erase_w = w;
    return;
  }
}

void add_random_erasing(std::vector<kernels::SampleSpec>& plan, const RandomErasing& re, uint64_t seed, int64_t epoch,
                        int out_h, int out_w) {
  if (re.p == 0) return;
  for (size_t i = 0; i < plan.size(); ++i)
    draw_erase_rect(re, seed, epoch, static_cast<int64_t>(i), out_h, out_w, plan[i]);
}

}  // namespace app
