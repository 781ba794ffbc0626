// Writing files so that a crash or a full disk never leaves half of one under the final name.
#pragma once
#include <string>

namespace app {

// Writes `data` to `path` through a temporary file <path>.tmp-<pid> in the same folder and a rename; a failure
// throws naming `path` and the reason.
void write_file_atomic(const std::string& path, const std::string& data);

}  // namespace app
