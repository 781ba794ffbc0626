#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "apps/common/data.h"
#include "apps/common/random_erasing.h"
#include "engine/device.h"
#include "tests/app/app_test_util.h"
#include "tests/gradcheck.h"

using engine::DType;

namespace {
std::vector<kernels::SampleSpec> erased_plan(int64_t n, double p, uint64_t seed, int64_t epoch, int side) {
  auto plan = app::make_epoch_plan(n, seed, epoch, true, true, 4);
  app::add_random_erasing(plan, app::RandomErasing{p}, seed, epoch, side, side);
  return plan;
}

bool same_rect(const kernels::SampleSpec& a, const kernels::SampleSpec& b) {
  return a.erase_y == b.erase_y && a.erase_x == b.erase_x && a.erase_h == b.erase_h && a.erase_w == b.erase_w &&
         a.erase_key == b.erase_key;
}

bool inside(const kernels::SampleSpec& s, int y, int x) {
  return s.erase_h > 0 && y >= s.erase_y && y < s.erase_y + s.erase_h && x >= s.erase_x && x < s.erase_x + s.erase_w;
}

std::vector<float> make_batch(const app::LabeledImages& d, const app::Preprocess& pp,
                              const std::vector<kernels::SampleSpec>& plan,
                              engine::Device dev = engine::Device::cpu()) {
  app::DeviceDataset dd(d, dev);
  app::BatchBuilder b(dd, app::batch_params(pp, 28, 28, true));
  b.set_plan(plan);
  app::Batch batch = b.make(0, static_cast<int64_t>(plan.size()));
  std::vector<float> out;
  for (double v : batch.x.to(engine::Device::cpu()).to_vector()) out.push_back(static_cast<float>(v));
  return out;
}
}  // namespace

TEST_CASE("random erasing: rectangles are a pure function of (seed, epoch, position)", "[app][erasing]") {
  const auto a = erased_plan(500, 0.5, 7, 2, 28), b = erased_plan(500, 0.5, 7, 2, 28);
  const auto next_epoch = erased_plan(500, 0.5, 7, 3, 28), other_seed = erased_plan(500, 0.5, 8, 2, 28);
  int erased = 0, differ_epoch = 0, differ_seed = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    REQUIRE(same_rect(a[i], b[i]));
    erased += a[i].erase_h > 0;
    differ_epoch += !same_rect(a[i], next_epoch[i]);
    differ_seed += !same_rect(a[i], other_seed[i]);
  }
  REQUIRE(erased > 0);
  // The key differs for every image (32 random bits), so every rectangle record differs.
  REQUIRE(differ_epoch == 500);
  REQUIRE(differ_seed == 500);
  // The crop plan is untouched: erasing draws from its own counter-based stream.
  const auto crop_only = app::make_epoch_plan(500, 7, 2, true, true, 4);
  for (size_t i = 0; i < a.size(); ++i) {
    REQUIRE(a[i].index == crop_only[i].index);
    REQUIRE(a[i].off_y == crop_only[i].off_y);
    REQUIRE(a[i].flip == crop_only[i].flip);
  }
  // p = 0: nothing is drawn.
  for (const auto& s : erased_plan(50, 0, 7, 2, 28)) REQUIRE(s.erase_h == 0);
}

TEST_CASE("random erasing: area, aspect, placement and frequency", "[app][erasing]") {
  const app::RandomErasing re{0.5};
  for (int side : {28, 96}) {
    for (double p : {0.5, 0.1}) {
      INFO("side " << side << ", p " << p);
      const int64_t n = 20000;
      int64_t erased = 0;
      double area_sum = 0, log_aspect_sum = 0;
      const double image = static_cast<double>(side) * side;
      for (int64_t i = 0; i < n; ++i) {
        kernels::SampleSpec s;
        app::draw_erase_rect(app::RandomErasing{p}, 3, 1, i, side, side, s);
        if (s.erase_h == 0) {
          REQUIRE((s.erase_w == 0 && s.erase_y == 0 && s.erase_x == 0));
          continue;
        }
        ++erased;
        const int h = s.erase_h, w = s.erase_w;
        REQUIRE((h >= 1 && w >= 1 && h < side && w < side));  // torchvision's h < H, w < W
        REQUIRE((s.erase_y >= 0 && s.erase_x >= 0 && s.erase_y + h <= side && s.erase_x + w <= side));
        // h and w are rounded from reals a, b with a * b in [0.02, 0.4] * H * W and a / b in [0.3, 3.3]: the
        // rounding moves each by at most 0.5.
        REQUIRE((h + 0.5) * (w + 0.5) >= re.area_lo * image);
        REQUIRE((h - 0.5) * (w - 0.5) <= re.area_hi * image);
        REQUIRE((h + 0.5) / (w - 0.5) >= re.aspect_lo);
        REQUIRE((h - 0.5) / (w + 0.5) <= re.aspect_hi);
        area_sum += h * w / image;
        log_aspect_sum += std::log(static_cast<double>(h) / w);
      }
      // Binomial: the erased share is p (minus the rare draws whose 10 attempts all fail) within 5 standard
      // errors sqrt(p (1 - p) / n) (0.018 at p = 0.5): a fixed seed, so this holds or fails for good.
      const double share = static_cast<double>(erased) / n;
      REQUIRE(std::fabs(share - p) <= 5 * std::sqrt(p * (1 - p) / n));
      // Mean area fraction of U[0.02, 0.4] is 0.21 and mean log aspect of log-U[0.3, 3.3] is 0.0997 (a uniform,
      // not log-uniform, aspect as in Zhong et al.'s code would give 0.44); the tolerances cover the rounding of
      // h and w and ~10 standard errors at the smallest sample (2000 rectangles: 0.0025 and 0.015).
      REQUIRE(std::fabs(area_sum / erased - 0.21) <= 0.02);
      REQUIRE(std::fabs(log_aspect_sum / erased - 0.5 * (std::log(0.3) + std::log(3.3))) <= 0.1);
    }
  }
}

TEST_CASE("random erasing: only the rectangle changes, filled with zero or the counter-based random values",
          "[app][erasing]") {
  const app::LabeledImages d = apptest::synthetic_images(24, 5);
  for (bool normalize : {false, true}) {
    for (bool random : {false, true}) {
      INFO("normalize " << normalize << ", random fill " << random);
      app::Preprocess pp;
      pp.resize = 40;
      pp.augment = true;
      pp.normalize = normalize;
      pp.erase_random = random;
      const auto plain = app::make_epoch_plan(24, 9, 0, true, true, pp.crop_padding());
      auto plan = plain;
      app::add_random_erasing(plan, app::RandomErasing{1.0}, 9, 0, 40, 40);
      const std::vector<float> before = make_batch(d, pp, plain), after = make_batch(d, pp, plan);
      int64_t changed_outside = 0, inside_count = 0, wrong_inside = 0;
      std::vector<float> fills;
      for (size_t i = 0; i < plan.size(); ++i) {
        REQUIRE(plan[i].erase_h > 0);  // p = 1
        for (int y = 0; y < 40; ++y)
          for (int x = 0; x < 40; ++x) {
            const size_t k = (i * 40 + y) * 40 + x;
            if (!inside(plan[i], y, x)) {
              changed_outside += after[k] != before[k];
              continue;
            }
            ++inside_count;
            float want = 0;
            if (random) {
              const float u = kernels::erase_fill_value<float>(plan[i].erase_key, y, x, 40);
              want = normalize ? (u - static_cast<float>(pp.mean)) / static_cast<float>(pp.stddev) : u;
              fills.push_back(u);
            }
            wrong_inside += after[k] != want;
          }
      }
      REQUIRE(changed_outside == 0);
      REQUIRE(inside_count > 0);
      REQUIRE(wrong_inside == 0);
      if (random) {
        // The fill is uniform in [0, 1): its mean is 0.5 within 10 standard errors (1/sqrt(12 n)).
        double sum = 0;
        for (float u : fills) {
          REQUIRE((u >= 0 && u < 1));
          sum += u;
        }
        REQUIRE(std::fabs(sum / fills.size() - 0.5) <= 10 / std::sqrt(12.0 * fills.size()));
      }
    }
  }
}

TEST_CASE("random erasing: a plan whose rectangle leaves the image is refused", "[app][erasing]") {
  const app::LabeledImages d = apptest::synthetic_images(2, 5);
  app::DeviceDataset dd(d, engine::Device::cpu());
  app::Preprocess pp;
  pp.resize = 28;
  app::BatchBuilder b(dd, app::batch_params(pp, 28, 28, true));
  std::vector<kernels::SampleSpec> plan(1);
  plan[0].erase_y = 20;
  plan[0].erase_h = 10;
  plan[0].erase_w = 3;
  REQUIRE_THROWS_WITH(b.set_plan(plan), Catch::Contains("erase rectangle 10x3") && Catch::Contains("28x28"));
}

TEST_CASE("random erasing: CUDA batches erase the same pixels with the same values as the CPU",
          "[app][erasing][cuda]") {
  SKIP_WITHOUT_CUDA();
  const app::LabeledImages d = apptest::synthetic_images(40, 2);
  app::Preprocess pp;
  pp.resize = 96;
  pp.augment = true;
  pp.normalize = true;
  pp.erase_random = true;
  auto plan = app::make_epoch_plan(40, 3, 1, true, true, pp.crop_padding());
  app::add_random_erasing(plan, app::RandomErasing{0.5}, 3, 1, 96, 96);
  const std::vector<float> cpu = make_batch(d, pp, plan), gpu = make_batch(d, pp, plan, engine::Device::cuda());
  REQUIRE(cpu.size() == gpu.size());
  int64_t erased = 0, erased_mismatch = 0, other_mismatch = 0;
  for (size_t i = 0; i < plan.size(); ++i)
    for (int y = 0; y < 96; ++y)
      for (int x = 0; x < 96; ++x) {
        const size_t k = (i * 96 + y) * 96 + x;
        if (inside(plan[i], y, x)) {
          ++erased;
          erased_mismatch += cpu[k] != gpu[k];  // the fill is exact on both: k / 2^24, then (v - mean) / std
        } else {
          // As in the preprocess CUDA test (the same bound): nvcc contracts the bilinear source coordinate into an
          // FMA, which moves it by up to an ulp at ~28 px (2 x 9.5e-7), so a weight by as much; times a pixel
          // step of at most 1 and 1 / std = 2.83 that is 5.4e-6 absolute, wherever the value itself is near 0.
          const float err = std::fabs(cpu[k] - gpu[k]);
          other_mismatch += !(err <= 1e-5f + 1e-6f * std::fabs(cpu[k]));
        }
      }
  REQUIRE(erased > 0);
  REQUIRE(erased_mismatch == 0);
  REQUIRE(other_mismatch == 0);
}
