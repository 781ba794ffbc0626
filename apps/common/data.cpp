#include "apps/common/data.h"

#include <cmath>
#include <cstring>

#include "engine/error.h"
#include "engine/ops.h"

namespace app {

using engine::cat;

int Preprocess::crop_padding() const { return static_cast<int>(std::lround(4.0 * resize / 28.0)); }

kernels::ImageBatchParams batch_params(const Preprocess& pp, int src_h, int src_w, bool training) {
  ENGINE_CHECK(pp.resize >= 1 && pp.resize <= 1024, "--resize ", pp.resize, " is outside [1, 1024]");
  ENGINE_CHECK(pp.stddev > 0, "normalisation std must be positive, got ", pp.stddev);
  kernels::ImageBatchParams p;
  p.src_h = src_h;
  p.src_w = src_w;
  p.out_h = p.out_w = pp.resize;
  p.pad = training && pp.augment ? pp.crop_padding() : 0;
  p.normalize = pp.normalize;
  p.mean = static_cast<float>(pp.mean);
  p.stddev = static_cast<float>(pp.stddev);
  p.erase_random = pp.erase_random;
  return p;
}

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
}  // namespace

Rng::Rng(uint64_t seed, uint64_t stream, uint64_t index) {
  uint64_t x = seed;
  uint64_t a = splitmix64(x) ^ (stream * 0xD1B54A32D192ED03ull);
  uint64_t b = splitmix64(a) ^ (index * 0xAEF17502108EF2D9ull);
  gen_.seed(splitmix64(b));
}

uint64_t Rng::below(uint64_t bound) {
  ENGINE_CHECK(bound > 0, "Rng::below(0)");
  const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;  // reject the biased tail
  uint64_t v;
  do v = gen_();
  while (v >= limit);
  return v % bound;
}

std::vector<kernels::SampleSpec> make_epoch_plan(int64_t n, uint64_t seed, int64_t epoch, bool shuffle, bool augment,
                                                 int pad) {
  Rng rng(seed, kStreamEpochPlan, static_cast<uint64_t>(epoch));
  std::vector<kernels::SampleSpec> plan(n);
  for (int64_t i = 0; i < n; ++i) plan[i].index = static_cast<int32_t>(i);
  if (shuffle)
    for (int64_t i = n - 1; i > 0; --i) std::swap(plan[i].index, plan[rng.below(i + 1)].index);
  for (auto& s : plan) {
    if (augment) {
      s.off_y = static_cast<int32_t>(rng.below(2 * pad + 1));
      s.off_x = static_cast<int32_t>(rng.below(2 * pad + 1));
      s.flip = static_cast<int32_t>(rng.below(2));
    } else {
      s.off_y = s.off_x = pad;
      s.flip = 0;
    }
  }
  return plan;
}

std::vector<kernels::SampleSpec> make_eval_plan(int64_t n) {
  std::vector<kernels::SampleSpec> plan(n);
  for (int64_t i = 0; i < n; ++i) plan[i].index = static_cast<int32_t>(i);
  return plan;
}

int64_t validation_count(double fraction, int64_t count) {
  ENGINE_CHECK(fraction > 0 && fraction < 1, "--val-split ", fraction, " must lie in (0, 1)");
  const int64_t n_val = static_cast<int64_t>(std::llround(fraction * count));
  ENGINE_CHECK(n_val >= 1 && n_val < count, "--val-split ", fraction, " of ", count,
               " examples leaves an empty training or validation set");
  return n_val;
}

void split_validation(const LabeledImages& all, double fraction, uint64_t seed, LabeledImages* train,
                      LabeledImages* val) {
  const int64_t n_val = validation_count(fraction, all.count);
  Rng rng(seed, kStreamValSplit, 0);
  std::vector<int64_t> perm(all.count);
  for (int64_t i = 0; i < all.count; ++i) perm[i] = i;
  for (int64_t i = all.count - 1; i > 0; --i) std::swap(perm[i], perm[rng.below(i + 1)]);
  std::vector<int64_t> tr(perm.begin(), perm.end() - n_val), va(perm.end() - n_val, perm.end());
  *train = all.select(tr);
  *val = all.select(va);
}

// ---------------- DeviceDataset ----------------
DeviceDataset::DeviceDataset(const LabeledImages& data, engine::Device device)
    : count_(data.count), rows_(data.rows), cols_(data.cols), device_(device), host_labels_(data.labels) {
  ENGINE_CHECK(count_ > 0, "dataset is empty");
  ENGINE_CHECK(count_ < (int64_t(1) << 31), "dataset of ", count_, " images is too large for int32 indices");
  ENGINE_CHECK(static_cast<int64_t>(data.pixels.size()) == count_ * rows_ * cols_, "dataset holds ", data.pixels.size(),
               " pixels for ", count_, " images of ", rows_, "x", cols_);
  images_ = std::make_shared<engine::Storage>(data.pixels.size(), device);
  engine::copy_from_host(*images_, data.pixels.data(), data.pixels.size());
  engine::Tensor host = engine::Tensor::empty({count_}, engine::DType::i32, engine::Device::cpu());
  std::memcpy(host.raw_data(), data.labels.data(), count_ * sizeof(int32_t));
  labels_ = host.to(device);
}

// ---------------- BatchBuilder ----------------
BatchBuilder::BatchBuilder(const DeviceDataset& data, const kernels::ImageBatchParams& params, engine::DType dtype)
    : data_(data), params_(params), dtype_(dtype) {
  ENGINE_CHECK(params.src_h == data.rows() && params.src_w == data.cols(), "BatchBuilder: parameters for ",
               params.src_h, "x", params.src_w, " images but the dataset's are ", data.rows(), "x", data.cols());
}

void BatchBuilder::set_plan(const std::vector<kernels::SampleSpec>& plan) {
  constexpr int64_t kInts = sizeof(kernels::SampleSpec) / sizeof(int32_t);
  static_assert(sizeof(kernels::SampleSpec) == kInts * sizeof(int32_t), "SampleSpec must be int32 fields");
  for (const auto& s : plan) {
    ENGINE_CHECK(s.index >= 0 && s.index < data_.size() && s.off_y >= 0 && s.off_x >= 0 && s.off_y <= 2 * params_.pad &&
                     s.off_x <= 2 * params_.pad,
                 "batch plan: sample (index ", s.index, ", offset ", s.off_y, ",", s.off_x,
                 ") is outside the dataset of ", data_.size(), " or the padding ", params_.pad);
    ENGINE_CHECK(s.erase_h == 0 || (s.erase_h > 0 && s.erase_w > 0 && s.erase_y >= 0 && s.erase_x >= 0 &&
                                    s.erase_y + s.erase_h <= params_.out_h && s.erase_x + s.erase_w <= params_.out_w),
                 "batch plan: erase rectangle ", s.erase_h, "x", s.erase_w, " at ", s.erase_y, ",", s.erase_x,
                 " is outside the ", params_.out_h, "x", params_.out_w, " image");
  }
  plan_size_ = static_cast<int64_t>(plan.size());
  engine::Tensor host = engine::Tensor::empty({plan_size_ * kInts}, engine::DType::i32, engine::Device::cpu());
  if (plan_size_) std::memcpy(host.raw_data(), plan.data(), plan.size() * sizeof(kernels::SampleSpec));
  plan_ = host.to(data_.device());
}

Batch BatchBuilder::make(int64_t begin, int64_t count) const {
  ENGINE_CHECK(begin >= 0 && count > 0 && begin + count <= plan_size_, "BatchBuilder::make(", begin, ", ", count,
               "): outside the plan of ", plan_size_);
  Batch b;
  b.x = engine::Tensor::empty({count, 1, params_.out_h, params_.out_w}, dtype_, data_.device());
  b.y = engine::Tensor::empty({count}, engine::DType::i32, data_.device());
  const auto* specs = reinterpret_cast<const kernels::SampleSpec*>(plan_.data<int32_t>()) + begin;
  engine::make_image_batch(data_.images(), data_.labels(), specs, count, params_, b.x, b.y);
  return b;
}

}  // namespace app
