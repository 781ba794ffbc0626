#include "apps/common/files.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "engine/error.h"

namespace app {

using engine::cat;

void write_file_atomic(const std::string& path, const std::string& data) {
  std::string tmp = cat(path, ".tmp-", ::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  ENGINE_CHECK(f, "cannot write ", tmp, ": ", std::strerror(errno));
  bool ok = std::fwrite(data.data(), 1, data.size(), f) == data.size();
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    engine::fail(cat("cannot write ", path, ": ", std::strerror(err)));
  }
}

}  // namespace app
