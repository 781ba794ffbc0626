// libFuzzer target for the IDX reader (apps/common/fmnist.cpp): the input is one file's content, read the way
// load_idx_pair reads it (read_maybe_gz, gzip detected by content, then parse_idx_images and parse_idx_labels).
// The file lives in memory (memfd), so the target touches no disk.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "apps/common/fmnist.h"
#include "engine/error.h"

namespace {
std::vector<uint8_t> read_through_file(const uint8_t* data, size_t size) {
  static const int fd = ::memfd_create("fuzz_idx", 0);
  if (fd < 0 || ::ftruncate(fd, 0) != 0 || ::pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) __builtin_trap();
  return app::read_maybe_gz("/proc/self/fd/" + std::to_string(fd));
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes;
  try {
    bytes = read_through_file(data, size);
  } catch (const engine::EngineError&) {
    return 0;  // corrupt or truncated gzip
  }
  try {
    app::IdxImages im = app::parse_idx_images(bytes, "fuzz input");
    if (im.pixels.size() != static_cast<size_t>(im.count) * im.rows * im.cols) __builtin_trap();
  } catch (const engine::EngineError&) {
  }
  try {
    std::vector<int32_t> labels = app::parse_idx_labels(bytes, "fuzz input", app::kNumClasses);
    for (int32_t l : labels)
      if (l < 0 || l >= app::kNumClasses) __builtin_trap();
  } catch (const engine::EngineError&) {
  }
  return 0;
}
