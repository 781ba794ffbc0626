// The BLAS description names a library and a kernel set, and on a CPU with AVX2 / AVX-512 the kernels in use are
// not generic SSE ones. The CPU's flags are read here from CPUID directly, independently of the library's check.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <set>
#include <string>

#include "kernels/cpu/blas_info.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace {

struct CpuFlags {
  bool avx2 = false, avx512 = false;
};

CpuFlags cpu_flags() {
  CpuFlags f;
#if defined(__x86_64__) || defined(__i386__)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool fma = c & (1u << 12), osxsave = c & (1u << 27);
  if (!osxsave) return f;
  unsigned xcr0_lo, xcr0_hi;
  __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  const bool ymm_os = (xcr0_lo & 0x6) == 0x6, zmm_os = (xcr0_lo & 0xe6) == 0xe6;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  f.avx2 = ymm_os && fma && (b & (1u << 5));
  // avx512f (16), dq (17), cd (28), bw (30), vl (31): the Skylake-X set OpenBLAS's AVX-512 kernels need.
  const unsigned skx = (1u << 16) | (1u << 17) | (1u << 28) | (1u << 30) | (1u << 31);
  f.avx512 = zmm_os && (b & skx) == skx;
#endif
  return f;
}

}  // namespace

TEST_CASE("blas description names the library, its kernel set and the CPU", "[blas]") {
  const kernels::cpu::BlasInfo i = kernels::cpu::blas_info();
  CHECK(i.library == "OpenBLAS");
  CHECK_FALSE(i.version.empty());
  CHECK_FALSE(i.core.empty());
  CHECK(i.threads >= 1);
  const std::string d = kernels::cpu::blas_description();
  CHECK(d.find(i.library) != std::string::npos);
  CHECK(d.find(i.core + " kernels") != std::string::npos);
  CHECK_FALSE(kernels::cpu::cpu_description().empty());
  INFO(kernels::cpu::machine_description());
  CHECK(kernels::cpu::machine_description().find(d) != std::string::npos);
}

TEST_CASE("on a CPU with AVX2 or AVX-512 the BLAS kernels are not generic SSE ones", "[blas]") {
  const CpuFlags f = cpu_flags();
  const std::string core = kernels::cpu::blas_info().core;
  INFO(kernels::cpu::machine_description());
  if (std::getenv("OPENBLAS_CORETYPE")) {
    WARN("skipped: OPENBLAS_CORETYPE is set in the environment, so the user chose the kernels");
    return;
  }
  if (!f.avx2 && !f.avx512) {
    WARN("skipped: this CPU has neither AVX2 nor AVX-512 (CPUID)");
    return;
  }
  // OpenBLAS's x86 cores whose kernels use 512-bit / 256-bit FMA vectors.
  const std::set<std::string> avx512_cores = {"SkylakeX", "Cooperlake", "SapphireRapids"};
  std::set<std::string> avx2_cores = {"Haswell", "Zen", "Excavator"};
  avx2_cores.insert(avx512_cores.begin(), avx512_cores.end());
  if (f.avx512)
    CHECK(avx512_cores.count(core) == 1);
  else
    CHECK(avx2_cores.count(core) == 1);
}
