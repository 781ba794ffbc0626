// OpenMP's default wait policy lets idle worker threads spin after every parallel region. On a small, shared
// CPU those spinning threads steal the cores from OpenBLAS's threads and from other processes. Fully passive
// threads, though, sleep at the end of every parallel region and take tens of microseconds to wake for the next,
// and a training step has hundreds of regions (every BN pass, im2col, GEMM): so passive with a bounded spin,
// GOMP_SPINCOUNT=200000 (well under a millisecond before sleeping). Timings: docs/benchmarks.md, "Measurements
// behind code choices". libgomp reads the variables once, before main(), so an app that wants them re-executes
// itself with them set; values the user set are always kept.
#pragma once

namespace app {

// Unless OMP_WAIT_POLICY is already set: sets it to "passive" (and GOMP_SPINCOUNT to 200000 unless set) and
// re-executes the program (the file /proc/self/exe points to, so that it keeps its name) with the same arguments.
// Returns normally (doing nothing) when the variable was set or the re-exec failed.
void relaunch_with_passive_openmp(char** argv);

}  // namespace app
