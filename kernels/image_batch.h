// Builds a training or evaluation batch from a dataset of uint8 images kept on the same device, in one pass:
// for each sample an index into the dataset, a crop offset and a flip; then per output pixel
//   1. horizontal flip (x -> W-1-x) and random-crop offset into the resized image padded by `pad` zeros,
//   2. bilinear resize from src_h x src_w to out_h x out_w with align_corners=False half-pixel sampling and no
//      antialiasing (torch.nn.functional.interpolate(mode="bilinear") / torchvision Resize on tensors with
//      antialias=False), sampling the source in [0, 1] (value / 255),
//   3. optional normalisation (v - mean) / std,
//   4. random erasing (Zhong et al. 2017): the pixels inside the sample's erase rectangle, drawn on the host into
//      the plan (apps/common/random_erasing.h), are replaced by 0 or by random intensities in [0, 1] (normalised
//      like the image) that come from a counter-based hash of (the sample's key, the pixel), so CPU and CUDA
//      produce the same values without any generator state on the device.
// This is torchvision's ToTensor -> Resize -> RandomCrop(padding) -> RandomHorizontalFlip -> Normalize, fused,
// so the dataset stays uint8 at its native size (47 MB for Fashion-MNIST) and no resized copy is ever stored.
// The labels of the batch are gathered too.
#pragma once
#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/host_device.h"

namespace kernels {

struct ImageBatchParams {
  int src_h = 28, src_w = 28;  // stored image size
  int out_h = 28, out_w = 28;  // batch image size
  int pad = 0;                 // crop padding in output pixels (offsets lie in [0, 2*pad])
  bool normalize = false;
  float mean = 0.f, stddev = 1.f;
  bool erase_random = false;  // erased pixels: random intensities (true) or 0 in the network input (false)
};

// One sample of a batch: which image, where the crop starts in the padded image, whether to flip.
struct SampleSpec {
  int32_t index = 0;
  int32_t off_y = 0, off_x = 0;  // in [0, 2*pad]; pad, pad is the centre (no shift)
  int32_t flip = 0;
  // Random erasing: the rectangle [erase_y, erase_y + erase_h) x [erase_x, erase_x + erase_w) in output pixels;
  // erase_h == 0: nothing erased. erase_key seeds the random fill.
  int32_t erase_y = 0, erase_x = 0, erase_h = 0, erase_w = 0;
  uint32_t erase_key = 0;
};

// splitmix64's finaliser: a bijective 64-bit mix, the core of counter-based draws (value = mix(key + counter)).
KERNELS_HOST_DEVICE inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The random fill of pixel (y, x) of an erased sample: 24 random bits as k / 2^24 in [0, 1), exact in float.
template <class T>
KERNELS_HOST_DEVICE inline T erase_fill_value(uint32_t key, int y, int x, int out_w) {
  const uint64_t pixel = static_cast<uint64_t>(y) * static_cast<uint64_t>(out_w) + static_cast<uint64_t>(x);
  const uint64_t bits = mix64((static_cast<uint64_t>(key) << 32 | pixel) + 0x9E3779B97F4A7C15ull) >> 40;
  return T(static_cast<float>(bits) * (1.0f / 16777216.0f));
}

// One output pixel (y, x) of one sample: the single source of the math for the CPU and CUDA versions.
template <class T>
KERNELS_HOST_DEVICE inline T image_batch_pixel(const uint8_t* img, const SampleSpec& s, int y, int x,
                                               const ImageBatchParams& p) {
  if (s.erase_h > 0 && y >= s.erase_y && y < s.erase_y + s.erase_h && x >= s.erase_x && x < s.erase_x + s.erase_w) {
    if (!p.erase_random) return T(0);
    const T r = erase_fill_value<T>(s.erase_key, y, x, p.out_w);
    return p.normalize ? (r - T(p.mean)) / T(p.stddev) : r;
  }
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
// inside its own namespace, for every storage type (kernels/dtype.h), so the two twins always provide the same set.
#define KERNELS_IMAGE_BATCH_INSTANTIATE(T)                                                      \
  template void make_image_batch<T>(const uint8_t*, const int32_t*, const SampleSpec*, int64_t, \
                                    const ImageBatchParams&, T*, int32_t*);
#define KERNELS_IMAGE_BATCH_INSTANTIATIONS KERNELS_FOR_EACH_COMPUTE(KERNELS_IMAGE_BATCH_INSTANTIATE)
