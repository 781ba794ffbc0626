#include "kernels/cuda/common.cuh"
#include "kernels/image_batch.h"

namespace kernels::cuda {
namespace {
constexpr int kBlock = 256;

template <class T>
__global__ void make_image_batch_kernel(const uint8_t* images, const int32_t* labels, const SampleSpec* specs,
                                        int64_t n, ImageBatchParams p, T* out, int32_t* out_labels) {
  const int64_t out_size = static_cast<int64_t>(p.out_h) * p.out_w;
  const int64_t src_size = static_cast<int64_t>(p.src_h) * p.src_w;
  CUDA_KERNEL_LOOP(i, n * out_size) {
    const int64_t b = i / out_size;
    const int r = static_cast<int>(i - b * out_size);
    const SampleSpec s = specs[b];
    out[i] = image_batch_pixel<T>(images + s.index * src_size, s, r / p.out_w, r % p.out_w, p);
    if (r == 0) out_labels[b] = labels[s.index];
  }
}
}  // namespace

template <class T>
void make_image_batch(const uint8_t* images, const int32_t* labels, const SampleSpec* specs, int64_t n,
                      const ImageBatchParams& p, T* out, int32_t* out_labels) {
  const int64_t total = n * p.out_h * p.out_w;
  if (total == 0) return;
  make_image_batch_kernel<T>
      <<<grid_for(total, kBlock), kBlock, 0, stream()>>>(images, labels, specs, n, p, out, out_labels);
  CUDA_CHECK_LAUNCH();
}

KERNELS_IMAGE_BATCH_INSTANTIATIONS

}  // namespace kernels::cuda
