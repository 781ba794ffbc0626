// libFuzzer target for the safetensors reader (engine/checkpoint.cpp): parse_safetensors is what
// read_safetensors runs on a file's bytes. Any input must either give a file whose tensors hold exactly the
// bytes their shape and dtype need, or throw EngineError.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/checkpoint.h"
#include "engine/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Two input forms. A whole file, as it lies on disk. Or, when the input starts with '{': the header JSON, a NUL,
  // then the data bytes; the 8-byte length is computed here, so that a mutation growing or shrinking the header
  // still reaches the tensor checks (in the raw form it nearly always breaks the length first).
  std::string bytes(reinterpret_cast<const char*>(data), size);
  if (size > 0 && data[0] == '{') {
    const size_t header_len = std::min(bytes.find('\0'), size);
    std::string prefix(8, '\0');
    for (int i = 0; i < 8; ++i) prefix[i] = static_cast<char>(static_cast<uint64_t>(header_len) >> (8 * i));
    bytes = prefix + bytes.substr(0, header_len) + (header_len < size ? bytes.substr(header_len + 1) : "");
  }
  engine::SafetensorsFile file;
  try {
    file = engine::parse_safetensors(bytes, "fuzz input");
  } catch (const engine::EngineError&) {
    return 0;
  }
  for (const auto& [name, t] : file.tensors) {
    if (t.bytes.size() > bytes.size()) __builtin_trap();  // a tensor's bytes come from the input
    try {
      engine::Tensor x = t.to_tensor();
      if (static_cast<size_t>(x.numel()) * engine::dtype_size(x.dtype()) != t.bytes.size()) __builtin_trap();
    } catch (const engine::EngineError&) {
      // dtypes the engine does not compute in (U8, F16, ...) are refused by name
    }
  }
  return 0;
}
