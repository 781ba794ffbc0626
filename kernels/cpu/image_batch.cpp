#include "kernels/image_batch.h"

namespace kernels::cpu {

template <class T>
void make_image_batch(const uint8_t* images, const int32_t* labels, const SampleSpec* specs, int64_t n,
                      const ImageBatchParams& p, T* out, int32_t* out_labels) {
  const int64_t src_size = static_cast<int64_t>(p.src_h) * p.src_w, out_size = static_cast<int64_t>(p.out_h) * p.out_w;
#pragma omp parallel for if (n * out_size > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const SampleSpec s = specs[i];
    const uint8_t* img = images + s.index * src_size;
    T* o = out + i * out_size;
    for (int y = 0; y < p.out_h; ++y)
      for (int x = 0; x < p.out_w; ++x) o[y * p.out_w + x] = image_batch_pixel<T>(img, s, y, x, p);
    out_labels[i] = labels[s.index];
  }
}

KERNELS_IMAGE_BATCH_INSTANTIATIONS

}  // namespace kernels::cpu
