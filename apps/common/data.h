// Preprocessing and batches. The dataset stays uint8 at 28x28 on the training device (47 MB for the 60000
// training images, uploaded once); each batch is built there by one fused kernel (kernels/image_batch.h) that
// gathers the batch's images by index and applies crop, flip, bilinear resize and normalisation on the fly.
// So nothing at 96x96 is ever stored (that would be 2.2 GB in float32) and input never waits on the host.
//
// Randomness: the sample order and the augmentation of epoch e are a pure function of (seed, e), drawn on the
// host into a plan (one SampleSpec per example) that is uploaded once per epoch. A run resumed at epoch e, even
// mid-epoch, replays exactly the batches the uninterrupted run would have seen.
#pragma once
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "apps/common/fmnist.h"
#include "engine/tensor.h"
#include "kernels/image_batch.h"

namespace app {

struct Preprocess {
  int resize = 96;  // output side; 28 = native
  bool normalize = false;
  double mean = 0.2860, stddev = 0.3530;  // Fashion-MNIST training set statistics
  bool augment = false;                   // random crop with padding 4 (scaled to the resolution) + horizontal flip
  bool erase_random = false;              // --erase-fill random (else zero); random_erasing.h
  // round(4 * resize / 28): torchvision's RandomCrop(28, padding=4) scaled to the resized image.
  int crop_padding() const;
};

// Kernel parameters for images of src_h x src_w; `training` turns augmentation padding on.
kernels::ImageBatchParams batch_params(const Preprocess& pp, int src_h, int src_w, bool training);

// A 64-bit generator seeded from (seed, stream, index) through splitmix64, with platform-independent draws
// (std::uniform_int_distribution differs between standard libraries).
class Rng {
 public:
  Rng(uint64_t seed, uint64_t stream, uint64_t index);
  uint64_t next() { return gen_(); }
  uint64_t below(uint64_t bound);  // uniform in [0, bound), bound > 0
 private:
  std::mt19937_64 gen_;
};

// Streams of Rng, so different uses of one seed never share numbers.
enum RngStream : uint64_t { kStreamEpochPlan = 1, kStreamValSplit = 2 };

// Order and augmentation of every example for training epoch `epoch` (0-based): a shuffled permutation when
// `shuffle`, crop offsets in [0, 2*pad] and a coin-flip per example when `augment`, else the centre (pad, pad).
std::vector<kernels::SampleSpec> make_epoch_plan(int64_t n, uint64_t seed, int64_t epoch, bool shuffle, bool augment,
                                                 int pad);
// Examples 0..n-1 in order, no augmentation (evaluation).
std::vector<kernels::SampleSpec> make_eval_plan(int64_t n);

// round(fraction * count): the size of the validation set split_validation() holds out; throws when that leaves
// an empty training or validation set.
int64_t validation_count(double fraction, int64_t count);
// Holds out validation_count(fraction, count) examples, chosen by a seeded permutation, as a validation set.
void split_validation(const LabeledImages& all, double fraction, uint64_t seed, LabeledImages* train,
                      LabeledImages* val);

// uint8 images + int32 labels on one device.
class DeviceDataset {
 public:
  DeviceDataset(const LabeledImages& data, engine::Device device);
  int64_t size() const { return count_; }
  int rows() const { return rows_; }
  int cols() const { return cols_; }
  engine::Device device() const { return device_; }
  const uint8_t* images() const { return static_cast<const uint8_t*>(images_->data()); }
  const int32_t* labels() const { return labels_.data<int32_t>(); }
  const std::vector<int32_t>& host_labels() const { return host_labels_; }

 private:
  int64_t count_;
  int rows_, cols_;
  engine::Device device_;
  std::shared_ptr<engine::Storage> images_;
  engine::Tensor labels_;
  std::vector<int32_t> host_labels_;
};

struct Batch {
  engine::Tensor x;  // [n, 1, H, W]
  engine::Tensor y;  // [n] int32
};

class BatchBuilder {
 public:
  BatchBuilder(const DeviceDataset& data, const kernels::ImageBatchParams& params,
               engine::DType dtype = engine::DType::f32);
  // Uploads the plan (one copy per epoch); entries index the dataset.
  void set_plan(const std::vector<kernels::SampleSpec>& plan);
  int64_t plan_size() const { return plan_size_; }
  // Examples plan[begin, begin + count).
  Batch make(int64_t begin, int64_t count) const;
  const kernels::ImageBatchParams& params() const { return params_; }

 private:
  const DeviceDataset& data_;
  kernels::ImageBatchParams params_;
  engine::DType dtype_;
  engine::Tensor plan_;  // int32 [plan_size * 4] on the device
  int64_t plan_size_ = 0;
};

}  // namespace app
