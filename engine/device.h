// Device: where a tensor's storage lives. CUDA availability is a run-time question with a readable answer.
#pragma once
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
Device resolve_device(const std::string& spec);

}  // namespace engine
