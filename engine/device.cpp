#include "engine/device.h"

#include <fmt/core.h>

#include <atomic>

#include "engine/error.h"
#include "kernels/cross_entropy.h"
#if ENGINE_HAVE_CUDA
#include "kernels/cuda/runtime.h"
#endif

namespace engine {

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda") return cuda(0);
  if (s.rfind("cuda:", 0) == 0) {
    try {
      size_t used = 0;
      int idx = std::stoi(s.substr(5), &used);
      if (used == s.size() - 5 && idx >= 0) return cuda(idx);
    } catch (const std::exception&) {
    }
  }
  fail(cat("unknown device '", s, "': expected cpu, cuda or cuda:N"));
}

std::string Device::str() const { return is_cpu() ? std::string("cpu") : cat("cuda:", index); }

std::string cuda_unavailable_reason() {
#if ENGINE_HAVE_CUDA
  return kernels::cuda::probe_device();
#else
  return "this engine was built without CUDA (no nvcc found at configure time; rebuild with -DENGINE_CUDA=ON)";
#endif
}

bool cuda_available() { return cuda_unavailable_reason().empty(); }

void require_cuda(const std::string& what) {
  std::string why = cuda_unavailable_reason();
  ENGINE_CHECK(why.empty(), what, " needs CUDA, but ", why);
}

Device resolve_device(const std::string& spec) {
  if (spec == "auto") {
    std::string why = cuda_unavailable_reason();
    if (why.empty()) return Device::cuda(0);
    static std::atomic<bool> told{false};  // resolved more than once per run; said once
    if (!told.exchange(true)) fmt::print(stderr, "notice: --device auto: using the CPU because {}\n", why);
    return Device::cpu();
  }
  Device d = Device::parse(spec);
  if (d.is_cuda()) {
    require_cuda("--device " + spec);
    use_device(d);
  }
  return d;
}

void use_device(Device d) {
  if (!d.is_cuda()) return;
  require_cuda("using " + d.str());  // throws in a CPU-only build
#if ENGINE_HAVE_CUDA
  kernels::cuda::use_device(d.index);
#endif
}

void check_device_errors(Device d) {
  if (!d.is_cuda()) return;
#if ENGINE_HAVE_CUDA
  use_device(d);
  const kernels::cuda::LabelError e = kernels::cuda::take_label_error();
  if (e.found)
    fail(cat("cross_entropy: ", kernels::bad_label_text(e.label, e.row, e.shape), ", found on ", d.str(), " in call ",
             e.call, " of cross_entropy since labels were last checked (that call's loss is NaN); ",
             "labels must be class indices 0..", e.shape.c - 1, " (check the labels of the data set)"));
  kernels::cuda::check_allocator();
#else
  require_cuda("check_device_errors on " + d.str());
#endif
}

void set_allow_tf32(bool allow) {
#if ENGINE_HAVE_CUDA
  kernels::cuda::set_allow_tf32(allow);
#else
  (void)allow;
#endif
}

int64_t cuda_free_memory(Device d) {
  ENGINE_CHECK(d.is_cuda(), "cuda_free_memory: ", d.str(), " is not a CUDA device");
#if ENGINE_HAVE_CUDA
  return static_cast<int64_t>(kernels::cuda::free_device_memory());
#else
  require_cuda("cuda_free_memory on " + d.str());
  return 0;
#endif
}

}  // namespace engine
