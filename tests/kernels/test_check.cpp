// kernels/check.h: a kernel's error is the engine's error type with the message unchanged, so users and callers
// see one kind of error whichever layer raised it; and the data path's upload op (engine/ops.h, engine/ops/data.cpp).
#include <catch2/catch.hpp>
#include <cstring>
#include <type_traits>

#include "engine/error.h"
#include "engine/ops.h"
#include "kernels/check.h"

static_assert(std::is_same_v<engine::EngineError, kernels::Error>, "engine::EngineError is the kernels' error type");

TEST_CASE("kernels' checks throw the engine's error with the message as built", "[kernels][errors]") {
  auto kernel_side = [](int k) { KERNELS_CHECK(k > 0, "gemm: k must be positive, got ", k); };
  REQUIRE_NOTHROW(kernel_side(1));
  try {
    kernel_side(-2);
    FAIL("no error thrown");
  } catch (const engine::EngineError& e) {
    REQUIRE(std::string(e.what()) == "gemm: k must be positive, got -2");
  }
  REQUIRE_THROWS_AS(engine::fail("x"), kernels::Error);
  REQUIRE(engine::cat("a", 1, '-', 2.5) == "a1-2.5");
}

TEST_CASE("copy_from_host: copies into CPU storage and refuses what does not fit", "[kernels][data]") {
  engine::Storage s(4, engine::Device::cpu());
  const unsigned char bytes[5] = {1, 2, 3, 4, 5};
  engine::copy_from_host(s, bytes, 4);
  REQUIRE(std::memcmp(s.data(), bytes, 4) == 0);
  REQUIRE_THROWS_WITH(engine::copy_from_host(s, bytes, 5), Catch::Contains("5 bytes do not fit a storage of 4"));
}
