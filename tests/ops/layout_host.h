// NCHW <-> NHWC on host vectors, the reference permute the channels-last tests check kernels against:
// [A, B, H, W] <-> [A, H, W, B], for activations (A = N, B = C) and conv weights (A = OC, B = C) alike.
#pragma once
#include <cstdint>
#include <vector>

namespace testing {

inline std::vector<double> to_nhwc(const std::vector<double>& v, int64_t a, int64_t b, int64_t h, int64_t w) {
  std::vector<double> out(v.size());
  for (int64_t i = 0; i < a; ++i)
    for (int64_t j = 0; j < b; ++j)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x) out[((i * h + y) * w + x) * b + j] = v[((i * b + j) * h + y) * w + x];
  return out;
}

inline std::vector<double> to_nchw(const std::vector<double>& v, int64_t a, int64_t b, int64_t h, int64_t w) {
  std::vector<double> out(v.size());
  for (int64_t i = 0; i < a; ++i)
    for (int64_t j = 0; j < b; ++j)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x) out[((i * b + j) * h + y) * w + x] = v[((i * h + y) * w + x) * b + j];
  return out;
}

}  // namespace testing
