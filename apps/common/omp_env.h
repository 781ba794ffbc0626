// OpenMP's default wait policy lets idle worker threads spin after every parallel region. On a small, shared
// CPU (2 cores here) those spinning threads steal the cores from OpenBLAS's threads and from other processes:
// measured on this machine, resnet18 at 28 px trained at 23 examples/s with the default policy and 64 with
// OMP_WAIT_POLICY=passive (same run, same load). Fully passive threads, though, sleep at the end of every
// parallel region and take tens of microseconds to wake for the next, and a training step has hundreds of
// regions (every BN pass, im2col, GEMM): GOMP_SPINCOUNT=200000 (a bounded spin of well under a millisecond
// before sleeping) took resnet18's 28-px CPU step from 250-296 ms to 207-223 ms (6 interleaved runs each, same
// load). libgomp reads the variables once, before main(), so an app that wants them re-executes itself with
// them set; values the user set are always kept.
#pragma once

namespace app {

// Unless OMP_WAIT_POLICY is already set: sets it to "passive" (and GOMP_SPINCOUNT to 200000 unless set) and
// re-executes the program (the file /proc/self/exe points to, so that it keeps its name) with the same arguments.
// Returns normally (doing nothing) when the variable was set or the re-exec failed.
void relaunch_with_passive_openmp(char** argv);

}  // namespace app
