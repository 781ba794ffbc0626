// OpenMP's default wait policy lets idle worker threads spin after every parallel region. On a small, shared
// CPU (2 cores here) those spinning threads steal the cores from OpenBLAS's threads and from other processes:
// measured on this machine, resnet18 at 28 px trained at 23 examples/s with the default policy and 64 with
// OMP_WAIT_POLICY=passive (same run, same load). libgomp reads the variable once, before main(), so an app
// that wants it re-executes itself with the variable set; a value the user set is always kept.
#pragma once

namespace app {

// Unless OMP_WAIT_POLICY is already set: sets it to "passive" and re-executes /proc/self/exe with the same
// arguments. Returns normally (doing nothing) when the variable was set or the re-exec failed.
void relaunch_with_passive_openmp(char** argv);

}  // namespace app
