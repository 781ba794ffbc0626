// The app data path's ops: uploading the uint8 dataset, assembling a training batch from it, and accumulating a
// batch's loss and accuracy on the device (kernels/image_batch.h, kernels/batch_metrics.h). Like every op they pick
// the kernel for the tensors' device; apps call these, never kernels::cuda directly.
#pragma once
#include <cstddef>
#include <cstdint>

#include "engine/tensor.h"
#include "kernels/batch_metrics.h"
#include "kernels/image_batch.h"

namespace engine {

// Copies `bytes` bytes from host memory into `dst`, on whichever device it lives.
void copy_from_host(Storage& dst, const void* src, std::size_t bytes);

// Fills x ([count, 1, p.out_h, p.out_w], f32 or f64) and y ([count], int32) from the uint8 `images` and int32
// `labels`, one sample per `specs` entry; the three pointers are on x's device.
void make_image_batch(const uint8_t* images, const int32_t* labels, const kernels::SampleSpec* specs, int64_t count,
                      const kernels::ImageBatchParams& p, Tensor& x, Tensor& y);

// Adds a batch to `acc` (f64 [kernels::kMetricsHeader + 2 * classes], on the logits' device): see
// kernels/batch_metrics.h for the layout. loss: the batch mean as one value, or undefined.
void accumulate_batch_metrics(const Tensor& logits, const Tensor& labels, const Tensor& loss, double loss_bound,
                              int64_t step, Tensor& acc);

}  // namespace engine
