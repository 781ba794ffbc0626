// Random erasing (Zhong et al. 2017, "Random Erasing Data Augmentation"), in torchvision's RandomErasing form:
// with probability p, one rectangle of area fraction s ~ U[area_lo, area_hi] of the image and aspect ratio
// r = h / w log-uniform in [aspect_lo, aspect_hi], h = round(sqrt(s * H * W * r)), w = round(sqrt(s * H * W / r)),
// placed uniformly inside the image; up to 10 attempts until h < H and w < W, else nothing is erased.
//
// The rectangles are drawn on the host into the epoch plan (kernels::SampleSpec), like the crop offsets, and the
// batch kernel (kernels/image_batch.h) fills them on the batch's device, so CPU and CUDA erase the same pixels.
// Every draw is counter-based: a pure function of (seed, epoch, position in the epoch), independent of the order
// in which images are visited, so a resumed run replays the same rectangles.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/image_batch.h"

namespace app {

struct RandomErasing {
  double p = 0;  // probability per image; 0 = off
  double area_lo = 0.02, area_hi = 0.4;
  double aspect_lo = 0.3, aspect_hi = 3.3;
};

// The rectangle for the image at `position` of epoch `epoch` (0-based) in an out_h x out_w batch image, written
// into spec.erase_* (erase_h = 0 when the coin says no or every attempt failed). Leaves the rest of spec alone.
void draw_erase_rect(const RandomErasing& re, uint64_t seed, int64_t epoch, int64_t position, int out_h, int out_w,
                     kernels::SampleSpec& spec);

// Draws the rectangle of every entry of an epoch plan (no-op when re.p == 0).
void add_random_erasing(std::vector<kernels::SampleSpec>& plan, const RandomErasing& re, uint64_t seed, int64_t epoch,
                        int out_h, int out_w);

}  // namespace app
