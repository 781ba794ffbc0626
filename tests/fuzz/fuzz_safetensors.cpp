// libFuzzer target for the safetensors reader (engine/checkpoint.cpp): parse_safetensors is what
// read_safetensors runs on a file's bytes. Any input must either give a file whose tensors hold exactly the
// bytes their shape and dtype need, or throw EngineError.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "engine/checkpoint.h"
#include "engine/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  engine::SafetensorsFile file;
  try {
    file = engine::parse_safetensors(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz input");
  } catch (const engine::EngineError&) {
    return 0;
  }
  for (const auto& [name, t] : file.tensors) {
    if (t.bytes.size() > size) __builtin_trap();  // a tensor's bytes come from the input
    try {
      engine::Tensor x = t.to_tensor();
      if (static_cast<size_t>(x.numel()) * engine::dtype_size(x.dtype()) != t.bytes.size()) __builtin_trap();
    } catch (const engine::EngineError&) {
      // dtypes the engine does not compute in (U8, F16, ...) are refused by name
    }
  }
  return 0;
}
