// The %peak table of the benchmarks (benchmarks/bench_common.h): names as cudaGetDeviceProperties reports them
// find their datasheet figures, anything else finds nothing (no guessed peak), and every entry is self-consistent.
#include <catch2/catch.hpp>
#include <cmath>
#include <set>
#include <string>

#include "benchmarks/bench_common.h"

using bench::find_gpu_peaks;

TEST_CASE("gpu peaks: reported device names find their datasheet figures", "[bench][peaks]") {
  struct Want {
    const char* name;
    const char* label;
    double fp32, tf32, mem;
  };
  const Want wants[] = {
      {"NVIDIA H200", "H200 SXM 141GB", 67000, 494500, 4800},
      {"NVIDIA H100 80GB HBM3", "H100 SXM5 80GB", 67000, 494500, 3350},
      {"NVIDIA H100 PCIe", "H100 PCIe 80GB", 51000, 378000, 2000},
      {"NVIDIA A100-SXM4-80GB", "A100 SXM4 80GB", 19500, 156000, 2039},
      {"NVIDIA A100-SXM4-40GB", "A100 SXM4 40GB", 19500, 156000, 1555},
      {"NVIDIA A100 80GB PCIe", "A100 PCIe 80GB", 19500, 156000, 1935},
      {"NVIDIA A100-PCIE-40GB", "A100 PCIe 40GB", 19500, 156000, 1555},
      {"NVIDIA GeForce RTX 3090", "GeForce RTX 3090", 35600, 35600, 936},
      {"NVIDIA GeForce RTX 4090", "GeForce RTX 4090", 82600, 82600, 1008},
      {"NVIDIA L40S", "L40S", 91600, 183000, 864},
  };
  for (const Want& w : wants) {
    INFO(w.name);
    const bench::GpuPeaks* p = find_gpu_peaks(w.name);
    REQUIRE(p != nullptr);
    CHECK(std::string(p->label) == w.label);
    CHECK(p->fp32_gflops == w.fp32);
    CHECK(p->tf32_gflops == w.tf32);
    CHECK(p->mem_gbps == w.mem);
  }
  // Surrounding spaces (some drivers pad the name) do not matter.
  REQUIRE(find_gpu_peaks(" NVIDIA H200 ") == find_gpu_peaks("NVIDIA H200"));
}

TEST_CASE("gpu peaks: an unlisted or ambiguous name gets no peak", "[bench][peaks]") {
  for (const char* name : {"", "NVIDIA H100", "H200", "NVIDIA GeForce RTX 2080 Ti", "NVIDIA H200X", "nvidia h200",
                           "NVIDIA A100", "Tesla V100-SXM2-16GB"}) {
    INFO("'" << name << "'");
    CHECK(find_gpu_peaks(name) == nullptr);
  }
}

TEST_CASE("gpu peaks: every entry is dense and self-consistent", "[bench][peaks]") {
  std::set<std::string> names;
  for (const bench::GpuPeaks& g : bench::gpu_peak_table()) {
    INFO(g.label);
    const double f[] = {g.fp32_gflops, g.tf32_gflops, g.bf16_gflops, g.mem_gbps};
    for (double v : f) CHECK((std::isfinite(v) && v > 0));
    // Tensor cores: TF32 at least FP32, BF16 twice TF32 on every listed architecture; a figure copied "with
    // sparsity" for one column but not the other breaks the ratio (GeForce 71 / 35.6 = 1.99, L4 121 / 60 = 2.02).
    CHECK(g.tf32_gflops >= g.fp32_gflops);
    const double r = g.bf16_gflops / g.tf32_gflops;
    CHECK((r >= 1.95 && r <= 2.05));
    CHECK(g.names[0] != nullptr);
    for (const char* n : g.names)
      if (n) CHECK(names.insert(n).second);  // one entry per reported name
  }
}
