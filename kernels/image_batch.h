// Builds a training or evaluation batch from a dataset of uint8 images kept on the same device, in one pass:
// for each sample an index into the dataset, a crop offset and a flip; then per output pixel
//   1. horizontal flip (x -> W-1-x) and random-crop offset into the resized image padded by `pad` zeros,
//   2. bilinear resize from src_h x src_w to out_h x out_w with align_corners=False half-pixel sampling and no
//      antialiasing (torch.nn.functional.interpolate(mode="bilinear") / torchvision Resize on tensors with
//      antialias=False), sampling the source in [0, 1] (value / 255),
//   3. optional normalisation (v - mean) / std.
// This is torchvision's ToTensor -> Resize -> RandomCrop(padding) -> RandomHorizontalFlip -> Normalize, fused,
// so the dataset stays uint8 at its native size (47 MB for Fashion-MNIST) and no resized copy is ever stored.
// The labels of the batch are gathered too.
#pragma once
#include <cstdint>

#include "kernels/host_device.h"

namespace kernels {

struct ImageBatchParams {
  int src_h = 28, src_w = 28;  // stored image size
  int out_h = 28, out_w = 28;  // batch image size
  int pad = 0;                 // crop padding in output pixels (offsets lie in [0, 2*pad])
  bool normalize = false;
  float mean = 0.f, stddev = 1.f;
};

// One sample of a batch: which image, where the crop starts in the padded image, whether to flip.
struct SampleSpec {
  int32_t index = 0;
  int32_t off_y = 0, off_x = 0;  // in [0, 2*pad]; pad, pad is the centre (no shift)
  int32_t flip = 0;
};

// One output pixel (y, x) of one sample: the single source of the math for the CPU and CUDA versions.
template <class T>
KERNELS_HOST_DEVICE inline T image_batch_pixel(const uint8_t* img, const SampleSpec& s, int y, int x,
                                               const ImageBatchParams& p) {
  const int xf = s.flip ? p.out_w - 1 - x : x;
  const int ry = y + s.off_y - p.pad, rx = xf + s.off_x - p.pad;  // pixel of the resized image
  T v = T(0);                                                     // RandomCrop pads with zeros
  if (ry >= 0 && ry < p.out_h && rx >= 0 && rx < p.out_w) {
    // torch's area_pixel_compute_source_index (align_corners=False): src = scale * (dst + 0.5) - 0.5, >= 0.
    const T scale_h = T(p.src_h) / T(p.out_h), scale_w = T(p.src_w) / T(p.out_w);
    T sy = scale_h * (T(ry) + T(0.5)) - T(0.5), sx = scale_w * (T(rx) + T(0.5)) - T(0.5);
    sy = sy < T(0) ? T(0) : sy;
    sx = sx < T(0) ? T(0) : sx;
    const int y0 = static_cast<int>(sy), x0 = static_cast<int>(sx);
    const int dy = y0 < p.src_h - 1 ? p.src_w : 0, dx = x0 < p.src_w - 1 ? 1 : 0;
    const T ly = sy - T(y0), lx = sx - T(x0);
    const uint8_t* q = img + static_cast<int64_t>(y0) * p.src_w + x0;
    v = (T(1) - ly) * ((T(1) - lx) * (T(q[0]) / T(255)) + lx * (T(q[dx]) / T(255))) +
        ly * ((T(1) - lx) * (T(q[dy]) / T(255)) + lx * (T(q[dy + dx]) / T(255)));
  }
  if (p.normalize) v = (v - T(p.mean)) / T(p.stddev);
  return v;
}

namespace cpu {
// images [N, src_h, src_w] uint8, labels [N]; specs [n]; out [n, 1, out_h, out_w]; out_labels [n].
template <class T>
void make_image_batch(const uint8_t* images, const int32_t* labels, const SampleSpec* specs, int64_t n,
                      const ImageBatchParams& p, T* out, int32_t* out_labels);
}  // namespace cpu
namespace cuda {
// Same, with every pointer (specs included) in device memory.
template <class T>
void make_image_batch(const uint8_t* images, const int32_t* labels, const SampleSpec* specs, int64_t n,
                      const ImageBatchParams& p, T* out, int32_t* out_labels);
}  // namespace cuda

}  // namespace kernels

// The explicit instantiations that kernels/cpu/image_batch.cpp and kernels/cuda/image_batch.cu both compile, each
// inside its own namespace, so the two twins always provide the same set.
#define KERNELS_IMAGE_BATCH_INSTANTIATIONS                                                           \
  template void make_image_batch<float>(const uint8_t*, const int32_t*, const SampleSpec*, int64_t,  \
                                        const ImageBatchParams&, float*, int32_t*);                  \
  template void make_image_batch<double>(const uint8_t*, const int32_t*, const SampleSpec*, int64_t, \
                                         const ImageBatchParams&, double*, int32_t*);
