// Errors found where throwing is not possible or would cost a host sync, reported later by name: the CPU
// cross-entropy twin's handling of a bad label (the behaviour the CUDA kernel must match), and on CUDA a free of a
// pointer the caching allocator does not own, raised by check_device_errors().
#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "engine/device.h"
#include "engine/tensor.h"
#include "kernels/cross_entropy.h"
#include "tests/gradcheck.h"

#if ENGINE_HAVE_CUDA
#include "kernels/cuda/runtime.h"
#endif

using namespace engine;

TEST_CASE("cross-entropy kernel (CPU): a bad label gives a NaN loss and a zero gradient row", "[cross_entropy]") {
  const kernels::CrossEntropyShape s{3, 4, 0.1};
  const std::vector<double> z = {0.5, -1, 2, 0, 1, 1, 1, 1, -2, 0.25, 3, 1};
  for (const std::vector<int32_t>& y : {std::vector<int32_t>{1, 4, 0}, std::vector<int32_t>{1, -3, 0}}) {
    INFO("label " << y[1]);
    REQUIRE(kernels::cpu::first_bad_label(y.data(), s) == 1);
    std::vector<double> grad(12, 7.0), ref_grad(12, 7.0);
    double loss = 0, ref_loss = 0;
    kernels::cpu::cross_entropy_forward<double>(z.data(), y.data(), &loss, grad.data(), s);
    CHECK(std::isnan(loss));
    for (int j = 0; j < 4; ++j) CHECK(grad[4 + j] == 0.0);
    // The good rows are what they would be with a valid label in row 1 (the loss is a mean, hence the 3).
    const std::vector<int32_t> fixed = {y[0], 2, y[2]};
    REQUIRE(kernels::cpu::first_bad_label(fixed.data(), s) == -1);
    kernels::cpu::cross_entropy_forward<double>(z.data(), fixed.data(), &ref_loss, ref_grad.data(), s);
    CHECK(std::isfinite(ref_loss));
    for (int j : {0, 1, 2, 3, 8, 9, 10, 11}) CHECK(grad[j] == ref_grad[j]);
  }
  REQUIRE(kernels::bad_label_text(7, 1, {3, 5, 0}) == "label 7 at row 1 is outside [0, 5) for logits [3, 5]");
}

#if ENGINE_HAVE_CUDA
TEST_CASE("CUDA allocator: a double free and a foreign pointer are reported by check_device_errors",
          "[allocator][cuda]") {
  SKIP_WITHOUT_CUDA();
  const Device cuda = Device::cuda();
  use_device(cuda);
  REQUIRE_NOTHROW(check_device_errors(cuda));  // nothing left over from earlier tests
  const auto before = kernels::cuda::allocator_stats();
  void* p = kernels::cuda::alloc(1000);
  kernels::cuda::free(p);
  kernels::cuda::free(p);  // twice: must not put the block in the cache twice
  int on_host = 0;
  kernels::cuda::free(&on_host);  // never ours
  REQUIRE(kernels::cuda::allocator_stats().bad_frees == 2);
  REQUIRE(kernels::cuda::allocator_stats().allocated_bytes == before.allocated_bytes);
  // Two requests of that size get two different blocks (a list corrupted by the double free would repeat one).
  void* a = kernels::cuda::alloc(1000);
  void* b = kernels::cuda::alloc(1000);
  CHECK(a != b);
  kernels::cuda::free(a);
  kernels::cuda::free(b);
  REQUIRE_THROWS_WITH(check_device_errors(cuda), Catch::Contains("2 free(s) of pointers that were not live blocks") &&
                                                     Catch::Contains("was freed twice"));
  REQUIRE_NOTHROW(check_device_errors(cuda));  // cleared
  REQUIRE(kernels::cuda::allocator_stats().bad_frees == 0);
}
#endif
