// Element-wise comparison of host values with hand-computed ones, naming the element that differs most (or the
// first non-finite one).
#pragma once
#include <catch2/catch.hpp>
#include <vector>

#include "tests/compare.h"

namespace testing {

// |got - want| <= tol * max(1, |want|) for every element; NaN or Inf on either side fails unless `nf` allows
// the same non-finite value in the same place.
inline void require_close(const std::vector<double>& got, const std::vector<double>& want, double tol = 1e-12,
                          NonFinite nf = NonFinite::fail) {
  REQUIRE_OK(compare_scaled(got, want, tol, nf));
}

}  // namespace testing
