#include "apps/common/omp_env.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <system_error>

namespace app {

void relaunch_with_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY")) return;
  ::setenv("OMP_WAIT_POLICY", "passive", 1);
  ::setenv("GOMP_SPINCOUNT", "200000", 0);  // keeps a value the user set
  // Exec the file /proc/self/exe points to, not the link itself: the kernel names a process after the file it
  // executes, so ps, top and pkill would otherwise see "exe".
  std::error_code ec;
  const std::string path = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  if (ec || path.empty()) return;
  ::execv(path.c_str(), argv);  // only returns on failure: then run as we are
}

}  // namespace app
