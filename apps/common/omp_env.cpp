#include "apps/common/omp_env.h"

#include <unistd.h>

#include <cstdlib>

namespace app {

void relaunch_with_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY")) return;
  ::setenv("OMP_WAIT_POLICY", "passive", 1);
  ::setenv("GOMP_SPINCOUNT", "200000", 0);  // keeps a value the user set
  ::execv("/proc/self/exe", argv);          // only returns on failure: then run as we are
}

}  // namespace app
