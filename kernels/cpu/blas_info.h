// Which BLAS and which of its kernel sets the CPU GEMMs (kernels/gemm.h) run on, and which CPU this is: printed
// by the benchmarks and train_fmnist, so that a slow machine explains itself.
//
// Kernel choice: Debian's OpenBLAS (DYNAMIC_ARCH) picks its kernels from a table of CPU models and falls back to
// generic SSE3 kernels ("Prescott") on a model it does not know, even when the CPU has AVX2 or AVX-512. At
// start-up, before any GEMM, the engine compares OpenBLAS's choice with the CPU's instruction-set flags and, when
// OpenBLAS chose narrower kernels and the user did not set OPENBLAS_CORETYPE, has OpenBLAS select again the core
// for those flags (SkylakeX / Cooperlake for AVX-512, Haswell / Zen for AVX2). Details in kernels/cpu/gemm.cpp.
#pragma once
#include <string>

namespace kernels::cpu {

struct BlasInfo {
  std::string library;    // "OpenBLAS"
  std::string version;    // "0.3.21"
  std::string core;       // the kernel set in use, as OpenBLAS names it: "SkylakeX", "Haswell", "Prescott"...
  std::string wanted;     // the core the engine asked OpenBLAS for ("" when it kept OpenBLAS's own choice)
  std::string chosen_by;  // how the core was chosen, in words
  int threads = 0;        // BLAS threads
};

BlasInfo blas_info();

// "OpenBLAS 0.3.21 Cooperlake kernels, 2 threads (chosen by the engine for the CPU's AVX-512 with BF16;
// OpenBLAS's own choice was Prescott)".
std::string blas_description();

// "Intel(R) Xeon(R) Processor (family 6 model 207), 2 logical CPUs", from /proc/cpuinfo.
std::string cpu_description();

// cpu_description() + "; " + blas_description(): the one line the programs print.
std::string machine_description();

}  // namespace kernels::cpu
