// Device: where a tensor's storage lives. CUDA availability is a run-time question with a readable answer.
#pragma once
#include <cstdint>
#include <string>

namespace engine {

enum class DeviceType { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  static Device cpu() { return {DeviceType::CPU, 0}; }
  static Device cuda(int index = 0) { return {DeviceType::CUDA, index}; }
  // "cpu", "cuda", "cuda:1"; throws on anything else.
  static Device parse(const std::string& s);
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  std::string str() const;
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
};

// True when the engine was compiled with CUDA and a usable device answers.
bool cuda_available();
// Why cuda_available() is false ("built without CUDA", "no CUDA device", driver too old ...); empty if available.
std::string cuda_unavailable_reason();
// Throws a readable EngineError naming `what` when CUDA cannot be used.
void require_cuda(const std::string& what);
// Resolves --device auto|cpu|cuda[:i]; auto picks CUDA when available, else CPU and prints a one-line notice.
// A CUDA answer is bound (use_device), so the index is checked here and all later work runs on that GPU.
Device resolve_device(const std::string& spec);

// The engine runs on one CUDA device per process. use_device(cuda:i) binds the process to GPU i on first use
// (every CUDA tensor allocation calls it) and afterwards refuses any other index with a named error, so no op can
// mix cuda:0 and cuda:1 tensors; an index >= the device count is a named error too. No-op for the CPU.
void use_device(Device d);

// Errors a device records without a host sync, raised here as an EngineError (and cleared): a cross-entropy
// label outside [0, classes) seen by a CUDA kernel, a free of a pointer the CUDA allocator did not hand out.
// A copy to the host, so call it where results are read anyway (MetricsAccumulator::read); no-op for the CPU,
// whose kernels report at once.
void check_device_errors(Device d);

// Free bytes on the bound CUDA device (cudaMemGetInfo), for the memory check before a run; excludes the caching
// allocator's cached blocks. A CPU device or a CPU-only build is a named error.
int64_t cuda_free_memory(Device d);

// Lets float32 GEMMs and convolutions on CUDA use TF32 tensor cores (default off: exact float32). No effect on the
// CPU, nor in a CPU-only build.
void set_allow_tf32(bool allow);

}  // namespace engine
