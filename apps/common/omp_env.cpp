#include "apps/common/omp_env.h"

#include <unistd.h>

#include <climits>
#include <cstdlib>

namespace app {

void relaunch_with_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY")) return;
  ::setenv("OMP_WAIT_POLICY", "passive", 1);
  ::setenv("GOMP_SPINCOUNT", "200000", 0);  // keeps a value the user set
  // Exec the file /proc/self/exe points to, not the link itself: the kernel names a process after the file it
  // executes, so ps, top and pkill would otherwise see "exe".
  char path[PATH_MAX];
  const ssize_t len = ::readlink("/proc/self/exe", path, sizeof path - 1);
  if (len <= 0) return;
  path[len] = '\0';
  ::execv(path, argv);  // only returns on failure: then run as we are
}

}  // namespace app
