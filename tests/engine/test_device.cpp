// Device selection: "--device cuda:N" parses to index N; on a machine or build without CUDA every way of reaching
// a GPU is a named error. With a device ([cuda]): the index is real (cudaGetDevice agrees), an index past the
// device count is a named error, and the engine keeps to one device per process.
#include <catch2/catch.hpp>
#include <thread>

#include "engine/device.h"
#include "engine/tensor.h"
#include "tests/gradcheck.h"

#if ENGINE_HAVE_CUDA
#include "kernels/cuda/runtime.h"
#endif

using namespace engine;

TEST_CASE("device: cpu, cuda and cuda:N parse to their index and print back", "[device]") {
  REQUIRE(Device::parse("cpu") == Device::cpu());
  REQUIRE(Device::parse("cuda") == Device::cuda(0));
  REQUIRE(Device::parse("cuda:0") == Device::cuda(0));
  REQUIRE(Device::parse("cuda:1").index == 1);
  REQUIRE(Device::parse("cuda:12").index == 12);
  REQUIRE(Device::parse("cuda:1") != Device::cuda(0));
  for (const char* s : {"cpu", "cuda:0", "cuda:3"}) REQUIRE(Device::parse(s).str() == s);
  for (const char* bad : {"cuda:", "cuda:-1", "cuda:1x", "cuda:+", "gpu:1", "CUDA", " cuda"}) {
    INFO(bad);
    REQUIRE_THROWS_WITH(Device::parse(bad), Catch::Contains("expected cpu, cuda or cuda:N"));
  }
}

TEST_CASE("device: without CUDA, cuda:N is refused by name wherever it is used", "[device]") {
  if (cuda_available()) return;  // about machines without one; the [cuda] cases below cover the rest
  REQUIRE_THROWS_WITH(resolve_device("cuda:1"), Catch::Contains("--device cuda:1 needs CUDA"));
  REQUIRE_THROWS_WITH(use_device(Device::cuda(1)), Catch::Contains("using cuda:1 needs CUDA"));
  REQUIRE_THROWS_WITH(Tensor::empty({2}, DType::f32, Device::cuda(1)), Catch::Contains("on cuda:1 needs CUDA"));
  REQUIRE_THROWS_WITH(check_device_errors(Device::cuda(0)), Catch::Contains("needs CUDA"));
  REQUIRE_NOTHROW(use_device(Device::cpu()));
  REQUIRE_NOTHROW(check_device_errors(Device::cpu()));
}

#if ENGINE_HAVE_CUDA
TEST_CASE("device cuda: the selected index is the current device, past the count is a named error", "[device][cuda]") {
  SKIP_WITHOUT_CUDA();
  const int n = kernels::cuda::device_count();
  REQUIRE(n >= 1);
  // The suite's tensors are on cuda:0, so that is the process's device; resolving it binds (or re-checks) it.
  REQUIRE(resolve_device("cuda:0") == Device::cuda(0));
  REQUIRE(kernels::cuda::bound_device() == 0);
  REQUIRE(kernels::cuda::current_device() == 0);
  const std::string past = cat("cuda:", n);
  REQUIRE_THROWS_WITH(resolve_device(past), Catch::Contains(cat(past, " does not exist: only ", n, " CUDA device")));
  REQUIRE_THROWS_WITH(Tensor::empty({2}, DType::f32, Device::cuda(n)), Catch::Contains("does not exist"));
  // A thread that never touched CUDA gets the process's device, not the runtime's default, on first use.
  int seen = -1;
  std::string error;
  std::thread t([&] {
    try {
      Tensor x = Tensor::full({4}, 2.0, DType::f32, Device::cuda(0));
      seen = kernels::cuda::current_device();
      if (x.to_vector() != std::vector<double>{2, 2, 2, 2}) error = "wrong values";
    } catch (const std::exception& e) {
      error = e.what();
    }
  });
  t.join();
  REQUIRE(error.empty());
  REQUIRE(seen == 0);
}

TEST_CASE("device cuda: a second GPU in the same process is refused by name", "[device][cuda]") {
  SKIP_WITHOUT_CUDA();
  Tensor a = Tensor::zeros({2}, DType::f32, Device::cuda(0));  // binds cuda:0 if nothing has yet
  if (kernels::cuda::device_count() < 2) {
    WARN("SKIPPED: one CUDA device only, so no second GPU to refuse");
    return;
  }
  REQUIRE_THROWS_WITH(Tensor::zeros({2}, DType::f32, Device::cuda(1)),
                      Catch::Contains("cuda:1 was asked for, but this process already runs on cuda:0") &&
                          Catch::Contains("one CUDA device per process"));
  REQUIRE_THROWS_WITH(a.to(Device::cuda(1)), Catch::Contains("one CUDA device per process"));
  REQUIRE_THROWS_WITH(resolve_device("cuda:1"), Catch::Contains("one CUDA device per process"));
  REQUIRE(kernels::cuda::current_device() == 0);
}
#endif
