// Element-wise comparison of host values with hand-computed ones, naming the first element that differs.
#pragma once
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

namespace testing {

// |got - want| <= tol * max(1, |want|) for every element.
inline void require_close(const std::vector<double>& got, const std::vector<double>& want, double tol = 1e-12) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i << ": got " << got[i] << ", want " << want[i]);
    REQUIRE(std::abs(got[i] - want[i]) <= tol * std::max(1.0, std::abs(want[i])));
  }
}

}  // namespace testing
