#include <catch2/catch.hpp>
#include <cmath>
#include <set>

#include "apps/common/data.h"
#include "apps/common/metrics.h"
#include "engine/device.h"
#include "engine/random.h"
#include "kernels/batch_metrics.h"
#include "tests/app/app_test_util.h"
#include "tests/gradcheck.h"

using engine::DType;
using engine::Tensor;

namespace {
// The image the torch reference values below were computed from.
app::LabeledImages pattern_image() {
  app::LabeledImages d;
  d.count = 1;
  d.rows = d.cols = 28;
  d.labels = {6};
  for (int y = 0; y < 28; ++y)
    for (int x = 0; x < 28; ++x) d.pixels.push_back(static_cast<uint8_t>((7 * y + 13 * x + ((x * y) % 5) * 11) % 256));
  return d;
}

struct Ref {
  int y, x;
  double v;
};

std::vector<float> batch_of(const app::LabeledImages& data, const app::Preprocess& pp, bool training,
                            const kernels::SampleSpec& spec) {
  app::DeviceDataset dd(data, engine::Device::cpu());
  app::BatchBuilder b(dd, app::batch_params(pp, 28, 28, training));
  b.set_plan({spec});
  app::Batch batch = b.make(0, 1);
  REQUIRE(batch.x.shape() == engine::Shape{1, 1, pp.resize, pp.resize});
  REQUIRE(batch.y.data<int32_t>()[0] == data.labels[spec.index]);
  const float* p = batch.x.data<float>();
  return std::vector<float>(p, p + batch.x.numel());
}
}  // namespace

// Reference: torch 1.13, x = img.float().div(255); F.interpolate(x, size=(S, S), mode="bilinear",
// align_corners=False), i.e. torchvision's Resize on tensors with antialias=False.
TEST_CASE("preprocess: bilinear resize matches torch (align_corners=False, no antialias)", "[app][preprocess]") {
  const std::vector<std::pair<int, std::vector<Ref>>> cases = {
      {96,
       {{0, 0, 0.0},
        {0, 95, 0.37254902720451355},
        {95, 0, 0.7411764860153198},
        {95, 95, 0.2823529541492462},
        {48, 32, 0.8919849395751953},
        {5, 89, 0.36047616600990295},
        {32, 7, 0.4738919138908386}}},
      {40,
       {{0, 0, 0.0},
        {0, 39, 0.37254902720451355},
        {39, 0, 0.7411764860153198},
        {39, 39, 0.2823529839515686},
        {20, 13, 0.8885588645935059},
        {5, 33, 0.3969411551952362},
        {13, 7, 0.49916669726371765}}},
      {13,
       {{0, 0, 0.05960668995976448},
        {0, 12, 0.39439043402671814},
        {12, 0, 0.7901671528816223},
        {12, 12, 0.15191465616226196},
        {6, 4, 0.8914781212806702},
        {5, 6, 0.12435903400182724},
        {4, 7, 0.13757988810539246}}},
  };
  app::LabeledImages img = pattern_image();
  for (const auto& [size, refs] : cases) {
    app::Preprocess pp;
    pp.resize = size;
    std::vector<float> out = batch_of(img, pp, false, {0, 0, 0, 0});
    for (const Ref& r : refs) {
      INFO("size " << size << " at (" << r.y << ", " << r.x << ")");
      REQUIRE(out[r.y * size + r.x] == Approx(r.v).margin(1e-6));
    }
  }
}

TEST_CASE("preprocess: 28 px is the identity scaled to [0, 1]", "[app][preprocess]") {
  app::LabeledImages img = pattern_image();
  app::Preprocess pp;
  pp.resize = 28;
  std::vector<float> out = batch_of(img, pp, false, {0, 0, 0, 0});
  for (int i = 0; i < 28 * 28; ++i) REQUIRE(out[i] == static_cast<float>(img.pixels[i]) / 255.0f);
}

// Reference: the 96 px torch output above, F.pad by 14 with zeros, crop at (3, 25), flip left-right,
// (v - 0.2860) / 0.3530: torchvision's RandomCrop(96, padding=14) + RandomHorizontalFlip + Normalize.
TEST_CASE("preprocess: crop, flip and normalisation match torchvision's order", "[app][preprocess]") {
  app::Preprocess pp;
  pp.resize = 96;
  pp.augment = true;
  pp.normalize = true;
  REQUIRE(pp.crop_padding() == 14);
  std::vector<float> out = batch_of(pattern_image(), pp, true, {0, 3, 25, 1});
  const std::vector<Ref> refs = {
      {0, 0, -0.8101983666419983},    {10, 95, -0.8101983666419983}, {11, 11, 0.2451813519001007},
      {11, 95, -0.39799854159355164}, {60, 11, 1.68035888671875},    {95, 95, 1.7036817073822021},
      {50, 50, -0.367269903421402},   {95, 20, 1.823192834854126},   {20, 84, 0.5264423489570618}};
  for (const Ref& r : refs) {
    INFO("at (" << r.y << ", " << r.x << ")");
    REQUIRE(out[r.y * 96 + r.x] == Approx(r.v).margin(1e-5));
  }
  // Padding at 28 px is torchvision's 4.
  pp.resize = 28;
  REQUIRE(pp.crop_padding() == 4);
  // Evaluation never pads or shifts.
  REQUIRE(app::batch_params(pp, 28, 28, false).pad == 0);
}

TEST_CASE("preprocess: epoch plans are a pure function of (seed, epoch)", "[app][preprocess]") {
  const int64_t n = 1000;
  auto a = app::make_epoch_plan(n, 7, 3, true, true, 4);
  auto b = app::make_epoch_plan(n, 7, 3, true, true, 4);
  auto same = [](const std::vector<kernels::SampleSpec>& x, const std::vector<kernels::SampleSpec>& y) {
    for (size_t i = 0; i < x.size(); ++i)
      if (x[i].index != y[i].index || x[i].off_y != y[i].off_y || x[i].off_x != y[i].off_x || x[i].flip != y[i].flip)
        return false;
    return x.size() == y.size();
  };
  REQUIRE(same(a, b));
  REQUIRE_FALSE(same(a, app::make_epoch_plan(n, 7, 4, true, true, 4)));
  REQUIRE_FALSE(same(a, app::make_epoch_plan(n, 8, 3, true, true, 4)));
  std::set<int32_t> seen;
  int flips = 0;
  std::set<int32_t> offsets;
  for (const auto& s : a) {
    seen.insert(s.index);
    flips += s.flip;
    offsets.insert(s.off_x);
    REQUIRE(s.off_y >= 0);
    REQUIRE(s.off_y <= 8);
    REQUIRE(s.off_x <= 8);
  }
  REQUIRE(seen.size() == n);  // a permutation
  REQUIRE(offsets.size() == 9);
  REQUIRE(flips > 400);
  REQUIRE(flips < 600);
  // Without augmentation every sample sits at the centre, unflipped.
  for (const auto& s : app::make_epoch_plan(n, 7, 3, true, false, 4)) {
    REQUIRE(s.off_y == 4);
    REQUIRE(s.off_x == 4);
    REQUIRE(s.flip == 0);
  }
  // Same seed and epoch -> identical augmented batches.
  app::LabeledImages d = apptest::synthetic_images(16, 1);
  app::DeviceDataset dd(d, engine::Device::cpu());
  app::Preprocess pp;
  pp.resize = 32;
  pp.augment = true;
  app::BatchBuilder builder(dd, app::batch_params(pp, 28, 28, true));
  builder.set_plan(app::make_epoch_plan(16, 5, 0, true, true, builder.params().pad));
  std::vector<double> x1 = builder.make(0, 16).x.to_vector();
  builder.set_plan(app::make_epoch_plan(16, 5, 0, true, true, builder.params().pad));
  REQUIRE(builder.make(0, 16).x.to_vector() == x1);
  builder.set_plan(app::make_epoch_plan(16, 5, 1, true, true, builder.params().pad));
  REQUIRE(builder.make(0, 16).x.to_vector() != x1);
}

TEST_CASE("preprocess: validation split is seeded, disjoint and complete", "[app][preprocess]") {
  app::LabeledImages all = apptest::synthetic_images(100, 3);
  for (int64_t i = 0; i < 100; ++i) all.pixels[i * 784] = static_cast<uint8_t>(i);  // tag each image
  app::LabeledImages tr, va, tr2, va2;
  app::split_validation(all, 0.2, 9, &tr, &va);
  app::split_validation(all, 0.2, 9, &tr2, &va2);
  REQUIRE(tr.count == 80);
  REQUIRE(va.count == 20);
  REQUIRE(va.pixels == va2.pixels);
  std::set<int> tags;
  for (int64_t i = 0; i < 80; ++i) tags.insert(tr.pixels[i * 784]);
  for (int64_t i = 0; i < 20; ++i) tags.insert(va.pixels[i * 784]);
  REQUIRE(tags.size() == 100);
  REQUIRE_THROWS_WITH(app::split_validation(all, 0.001, 9, &tr, &va), Catch::Contains("empty"));
}

TEST_CASE("preprocess: batch plans out of range are rejected", "[app][preprocess]") {
  app::LabeledImages d = apptest::synthetic_images(4, 1);
  app::DeviceDataset dd(d, engine::Device::cpu());
  app::Preprocess pp;
  pp.resize = 28;
  app::BatchBuilder b(dd, app::batch_params(pp, 28, 28, false));
  REQUIRE_THROWS_WITH(b.set_plan({{4, 0, 0, 0}}), Catch::Contains("outside the dataset"));
  REQUIRE_THROWS_WITH(b.set_plan({{0, 1, 0, 0}}), Catch::Contains("padding 0"));
  b.set_plan(app::make_eval_plan(4));
  REQUIRE_THROWS_WITH(b.make(2, 3), Catch::Contains("outside the plan"));
}

TEST_CASE("metrics: accuracy, per-class counts, loss sum and the first bad step", "[app][metrics]") {
  app::MetricsAccumulator acc(3, engine::Device::cpu());
  // Predictions 0, 2, 0 (a tie goes to the first maximum) against labels 0, 1, 0.
  Tensor logits = Tensor::from_vector({5, 1, 1, 0, 1, 2, 3, 3, 0}, {3, 3}, DType::f32);
  Tensor labels = Tensor::from_vector({0, 1, 0}, {3}, DType::i32);
  acc.add(logits, labels, Tensor::from_vector({0.5}, {1}, DType::f32), 0);
  auto t = acc.read();
  REQUIRE(t.count == 3);
  REQUIRE(t.correct == 2);
  REQUIRE(t.loss_sum == Approx(1.5));
  REQUIRE(t.class_correct == std::vector<double>{2, 0, 0});
  REQUIRE(t.class_total == std::vector<double>{2, 1, 0});
  REQUIRE(t.first_bad_step == -1);
  acc.add(logits, labels, Tensor::from_vector({1e30}, {1}, DType::f32), 6);  // no bound: a finite loss is fine
  REQUIRE(acc.read().first_bad_step == -1);
  acc.add(logits, labels, Tensor::from_vector({NAN}, {1}, DType::f32), 7);
  acc.add(logits, labels, Tensor::from_vector({INFINITY}, {1}, DType::f32), 9);
  REQUIRE(acc.read().first_bad_step == 7);
  REQUIRE(std::isnan(acc.read().first_bad_loss));
  acc.restore(10, 4, 8);
  t = acc.read();
  REQUIRE(t.loss() == Approx(10.0 / 8));
  REQUIRE(t.accuracy() == Approx(0.5));
  REQUIRE(t.first_bad_step == -1);
  REQUIRE_THROWS_WITH(acc.add(logits, Tensor::from_vector({0, 1}, {2}, DType::i32), Tensor(), 0),
                      Catch::Contains("labels"));
}

TEST_CASE("metrics: a finite loss above the bound is a bad step, as is infinity", "[app][metrics]") {
  Tensor logits = Tensor::from_vector({1, 0, 0, 1}, {2, 2}, DType::f32);
  Tensor labels = Tensor::from_vector({0, 1}, {2}, DType::i32);
  auto loss = [](double v) { return Tensor::from_vector({v}, {1}, DType::f32); };
  app::MetricsAccumulator acc(2, engine::Device::cpu(), 10.0);
  acc.add(logits, labels, loss(10.0), 0);  // at the bound: still fine
  REQUIRE(acc.read().first_bad_step == -1);
  acc.add(logits, labels, loss(1e17), 3);
  acc.add(logits, labels, loss(NAN), 4);
  REQUIRE(acc.read().first_bad_step == 3);
  REQUIRE(acc.read().first_bad_loss == Approx(1e17));
  acc.reset();
  REQUIRE(acc.read().first_bad_step == -1);
  app::MetricsAccumulator unbounded(2, engine::Device::cpu());
  unbounded.add(logits, labels, loss(INFINITY), 2);
  REQUIRE(unbounded.read().first_bad_step == 2);
}

TEST_CASE("preprocess+metrics: CUDA batches and metrics match the CPU", "[app][preprocess][cuda]") {
  SKIP_WITHOUT_CUDA();
  app::LabeledImages d = apptest::synthetic_images(40, 2);
  app::Preprocess pp;
  pp.resize = 96;
  pp.augment = true;
  pp.normalize = true;
  auto plan = app::make_epoch_plan(40, 3, 1, true, true, pp.crop_padding());
  app::DeviceDataset cpu_d(d, engine::Device::cpu()), cuda_d(d, engine::Device::cuda());
  app::BatchBuilder cpu_b(cpu_d, app::batch_params(pp, 28, 28, true)),
      cuda_b(cuda_d, app::batch_params(pp, 28, 28, true));
  cpu_b.set_plan(plan);
  cuda_b.set_plan(plan);
  app::Batch a = cpu_b.make(5, 30), b = cuda_b.make(5, 30);
  REQUIRE(b.x.is_cuda());
  // Both sides run image_batch_pixel(), but nvcc contracts the float32 source coordinate (dst + 0.5) * scale - 0.5
  // into an FMA: at ~27 px one ulp is 2e-6, which moves a bilinear weight by that much, times 1 / std = 2.8.
  REQUIRE(testing::close_ratio(b.x.to(engine::Device::cpu()), a.x, 1e-5, 1e-6) <= 1);
  REQUIRE(b.y.to(engine::Device::cpu()).to(DType::f64).to_vector() == a.y.to(DType::f64).to_vector());

  Tensor logits = engine::randn({30, 10}, DType::f32);
  app::MetricsAccumulator ma(10, engine::Device::cpu(), 1.0), mb(10, engine::Device::cuda(), 1.0);
  Tensor loss = Tensor::from_vector({0.25}, {1}, DType::f32), big = Tensor::from_vector({2.5}, {1}, DType::f32);
  ma.add(logits, a.y, loss, 0);
  mb.add(logits.to(engine::Device::cuda()), b.y, loss.to(engine::Device::cuda()), 0);
  ma.add(logits, a.y, big, 1);  // above the bound of 1: both record step 1
  mb.add(logits.to(engine::Device::cuda()), b.y, big.to(engine::Device::cuda()), 1);
  auto ta = ma.read(), tb = mb.read();
  REQUIRE(ta.first_bad_step == 1);
  REQUIRE(tb.first_bad_step == 1);
  REQUIRE(tb.first_bad_loss == ta.first_bad_loss);
  REQUIRE(ta.correct == tb.correct);
  REQUIRE(ta.class_total == tb.class_total);
  REQUIRE(ta.class_correct == tb.class_correct);
  REQUIRE(ta.loss_sum == Approx(tb.loss_sum));
}
