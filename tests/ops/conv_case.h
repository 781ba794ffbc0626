// The convolution case both conv test files sweep (tests/ops/test_conv2d.cpp on the CPU, test_conv2d_cuda.cpp
// against it): input and kernel shapes, stride and padding, bias or not.
#pragma once
#include <cstdint>
#include <string>

#include "engine/error.h"
#include "engine/ops.h"

namespace testing {

struct ConvCase {
  int64_t n, c, h, w, oc, kh, kw;
  engine::Conv2dParams p;
  bool bias;
};

inline engine::Conv2dParams params(int sh, int sw, int ph, int pw) {
  engine::Conv2dParams p;
  p.stride_h = sh, p.stride_w = sw, p.pad_h = ph, p.pad_w = pw;
  return p;
}

inline std::string describe(const ConvCase& k) {
  return engine::cat("x [", k.n, ", ", k.c, ", ", k.h, ", ", k.w, "], w [", k.oc, ", ", k.c, ", ", k.kh, ", ", k.kw,
                     "], stride ", k.p.stride_h, "x", k.p.stride_w, ", pad ", k.p.pad_h, "x", k.p.pad_w,
                     k.bias ? ", bias" : ", no bias");
}

}  // namespace testing
