#include <cstring>

#include "engine/ops.h"
#include "engine/ops/common.h"
#if ENGINE_HAVE_CUDA
#include "kernels/cuda/runtime.h"
#endif

namespace engine {

void copy_from_host(Storage& dst, const void* src, std::size_t bytes) {
  ENGINE_CHECK(bytes <= dst.bytes(), "copy_from_host: ", bytes, " bytes do not fit a storage of ", dst.bytes());
  if (bytes == 0) return;
  dst.bump_version();
  if (dst.device().is_cpu()) {
    std::memcpy(dst.data(), src, bytes);
  } else {
    ENGINE_CUDA_ONLY("copy_from_host", kernels::cuda::memcpy_h2d(dst.data(), src, bytes));
  }
}

void make_image_batch(const uint8_t* images, const int32_t* labels, const kernels::SampleSpec* specs, int64_t count,
                      const kernels::ImageBatchParams& p, Tensor& x, Tensor& y) {
  dispatch_compute("make_image_batch", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    ENGINE_KERNEL("make_image_batch", x, make_image_batch<T>, images, labels, specs, count, p, x.data<T>(),
                  y.data<int32_t>());
  });
}

void accumulate_batch_metrics(const Tensor& logits, const Tensor& labels, const Tensor& loss, double loss_bound,
                              int64_t step, Tensor& acc) {
  const int64_t classes = logits.size(1);
  dispatch_compute("batch metrics", logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const kernels::compute_t<T>* l = loss.defined() ? loss.data<kernels::compute_t<T>>() : nullptr;
    ENGINE_KERNEL("batch metrics", acc, accumulate_batch_metrics<T>, logits.data<T>(), labels.data<int32_t>(),
                  logits.size(0), classes, l, loss_bound, step, acc.data<double>());
  });
}

}  // namespace engine
