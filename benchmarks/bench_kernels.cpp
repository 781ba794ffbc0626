// bench_kernels: every kernel of a ResNet training step, at the shapes the network really sees, called directly
// (kernels::cpu::... / kernels::cuda::..., the code the engine runs; no Tensor ops, no autograd).
//
// For each distinct layer shape of --model at --batch x --resize we time forward and backward (warm-up calls
// first, then --repeat timed calls with the cache flushed before each, untimed) and print the median, min and max,
// the rate (GFLOP/s for convolutions and GEMMs, GB/s for memory-bound ops, from the byte model in
// docs/benchmarks.md) and its share of the device's peak. `count` says how often the shape occurs in one training
// step; median x count, summed per op, gives the per-op breakdown of a step printed at the end.
//
// CPU: steady clock; the peak is measured once (best of a 2048^3 OpenBLAS sgemm and a STREAM-like triad) unless
//      --peak-gflops / --peak-gbps are given.
// CUDA: CUDA events on the engine stream; L2 flushed by writing 256 MB between repeats; our convolutions beside
//      cuDNN's, and each convolution's GEMMs run alone through kernels::cuda::gemm (cuBLAS) at the same M, N, K;
//      peaks: the detected GPU's datasheet figures (bench::find_gpu_peaks; FP32, TF32 or BF16 by --precision); an
//      unlisted GPU gets no %peak unless --peak-gflops / --peak-gbps are given.
//
// --layout nchw | nhwc | both: the memory layout of the convolution rows (kernels/conv.h); NHWC rows are named
// native-nhwc / cudnn-nhwc and get their own step estimate (the other ops stay NCHW, as the engine runs them).
//
// --precision fp32 | tf32 | bf16 as train_fmnist's: tf32 is float32 with TF32 tensor cores for the GEMMs (CUDA;
// float32 on the CPU); bf16 runs the activation kernels in bf16 storage (kernel_rows.h says what stays float32).
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "apps/common/cli.h"
#include "apps/common/omp_env.h"
#include "benchmarks/kernel_rows.h"
#include "models/registry.h"

#if ENGINE_HAVE_CUDA
#include "kernels/cuda/runtime.h"
#endif

using bench_kernels::Bench;
using bench_kernels::g_cuda;
using bench_kernels::Options;
using engine::Device;
using engine::DType;
using engine::Tensor;

namespace {

// CPU peaks, measured: the best of a few 2048^3 OpenBLAS sgemms (GFLOP/s) and of a triad a = b + s*c over three
// 64 MB arrays (GB/s, counting 3 x 64 MB per pass).
double measure_cpu_gflops(int64_t n) {
  std::vector<float> a(n * n, 1.f), b(n * n, 0.5f), c(n * n, 0.f);
  bench::TimingOptions t;
  t.warmup = 1, t.repeat = 3;
  auto ms = bench::time_cpu(
      [&] { kernels::cpu::gemm<float>(false, false, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, c.data(), n); }, t);
  return 2.0 * n * n * n / (bench::stats_of(ms).min / 1e3) / 1e9;
}
double measure_cpu_gbps() {
  const int64_t n = 16 << 20;
  std::vector<float> a(n), b(n, 1.f), c(n, 2.f);
  bench::TimingOptions t;
  t.warmup = 1, t.repeat = 5;
  auto ms = bench::time_cpu(
      [&] {
        float* pa = a.data();
        const float *pb = b.data(), *pc = c.data();
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; ++i) pa[i] = pb[i] + 0.5f * pc[i];
      },
      t);
  return 3.0 * n * 4 / (bench::stats_of(ms).min / 1e3) / 1e9;
}

const char* kDescription =
    "bench_kernels: the kernels of a ResNet training step at the model's real shapes, called directly.";
const char* kExamples =
    "examples:\n"
    "  bench_kernels --quick                                   (CPU, resnet18, batch 16, 28x28, a few seconds)\n"
    "  bench_kernels --device cpu --model resnet18 --batch 128 --resize 28 --threads 2\n"
    "  bench_kernels --device cuda --model resnet50 --batch 128 --resize 96 --ops conv --json\n"
    "  bench_kernels --device cuda --precision bf16 --ops conv,bn\n"
    "  bench_kernels --model resnet50 --ops conv --layout both   (NCHW and NHWC convolutions side by side)";

}  // namespace

int main(int argc, char** argv) {
  // Measure what the apps run: passive OpenMP workers with a bounded spin (see apps/common/omp_env.h), unless
  // the caller set OMP_WAIT_POLICY; the header line prints the policy in force.
  app::relaunch_with_passive_openmp(argv);
  // Defaults that depend on --device or --quick stay empty until both are known.
  std::string device = "cpu", model = "resnet18", ops, precision = "fp32", layout = "nchw";
  std::optional<int64_t> batch, res, repeat, warmup;
  std::optional<double> peak_gflops, peak_gbps;
  int64_t threads = 0;
  bool no_gemm = false, no_flush = false, quick = false, json = false;
  CLI::App cli{kDescription, "bench_kernels"};
  app::configure_cli(cli, "bench_kernels [options]", kExamples);
  auto integer = [](std::optional<int64_t>& to, const char* flag, int64_t lo) {
    return [&to, flag, lo](const std::string& v) { to = app::parse_int(v, flag, lo, int64_t{1} << 30); };
  };
  auto number = [](std::optional<double>& to, const char* flag) {
    return [&to, flag](const std::string& v) { to = app::parse_double(v, flag, 0, 1e12); };
  };
  app::add_option(cli, "device", "DEV", "cpu, cuda or cuda:N (default cpu).", [&](const std::string& v) {
    Device::parse(v);
    device = v;
  });
  app::add_option(
      cli, "model", "NAME",
      "resnet18, resnet34, resnet50, resnet101, resnet152, or the CIFAR resnet20/32/44/56/110 (their option-A "
      "shortcut has no row here) (default resnet18).",
      [&](const std::string& v) {
        model = app::parse_choice(v, "model",
                                  {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet20", "resnet32",
                                   "resnet44", "resnet56", "resnet110"});
      });
  app::add_option(cli, "batch", "N", "Batch size (default CPU 16, CUDA 128).", integer(batch, "batch", 2));
  app::add_option(cli, "resize", "N",
                  "Input height = width (default 96, --quick 28; Fashion-MNIST native 28; ImageNet 224).",
                  integer(res, "resize", 8));
  app::add_option(cli, "repeat", "N", "Timed calls per kernel (default CPU 5, CUDA 20, --quick 3).",
                  integer(repeat, "repeat", 1));
  app::add_option(cli, "warmup", "N", "Untimed calls first (default 2, --quick 1).", integer(warmup, "warmup", 0));
  app::add_option(cli, "ops", "LIST",
                  "Comma list of substrings of op names: conv, conv_gemm, bn, relu, add, maxpool, avgpool, linear, "
                  "ce, sgd (default all).",
                  [&](const std::string& v) { ops = v; });
  app::add_option(cli, "no-gemm", "", "Skip the bare-GEMM and im2col/col2im rows beside each convolution.",
                  [&](const std::string&) { no_gemm = true; });
  app::add_option(cli, "no-flush", "", "Do not flush caches between repeats.",
                  [&](const std::string&) { no_flush = true; });
  app::add_option(cli, "threads", "N", "CPU threads for OpenMP and OpenBLAS (default 0: OMP_NUM_THREADS or all cores).",
                  [&](const std::string& v) { threads = app::parse_int(v, "threads", 0, 1024); });
  app::add_option(cli, "precision", "MATH",
                  "fp32, tf32 or bf16 (as train_fmnist --precision): tf32 = float32 with TF32 tensor cores for the "
                  "GEMMs (CUDA); bf16 = the activation kernels in bf16, cross-entropy and SGD float32 (default fp32).",
                  [&](const std::string& v) {
                    precision = app::parse_choice(v, "precision", {"fp32", "tf32", "bf16"});
                  });
  app::add_option(cli, "layout", "L",
                  "Convolution layout: nchw, nhwc (channels last: x [N,H,W,C], weight [OC,KH,KW,C]) or both, side "
                  "by side (default nchw).",
                  [&](const std::string& v) {
                    layout = app::parse_choice(v, "layout", {"nchw", "nhwc", "both"});
                  });
  app::add_option(cli, "tf32", "0|1", "The older spelling of --precision tf32 (1) or fp32 (0).",
                  [&](const std::string& v) { precision = app::parse_int(v, "tf32", 0, 1) ? "tf32" : "fp32"; });
  app::add_option(cli, "peak-gflops", "GFLOPS",
                  "Peak GFLOP/s for %peak (default CPU: measured sgemm; CUDA: the GPU's datasheet).",
                  number(peak_gflops, "peak-gflops"));
  app::add_option(cli, "peak-gbps", "GBPS",
                  "Peak GB/s for %peak (default CPU: measured triad; CUDA: the GPU's datasheet).",
                  number(peak_gbps, "peak-gbps"));
  app::add_option(cli, "quick", "", "Short run: 28x28, 1 warm-up + 3 timed calls, no GEMM rows, sgemm peak at 1024.",
                  [&](const std::string&) { quick = true; });
  app::add_option(cli, "json", "", "One JSON object per line instead of tables.",
                  [&](const std::string&) { json = true; });
  if (std::optional<int> done = app::parse_cli(cli, argc, argv)) return *done;
  try {
    Options o;
    o.dev = Device::parse(device);
    g_cuda = o.dev.is_cuda();
    if (g_cuda) {
      engine::require_cuda("bench_kernels --device cuda");
      engine::use_device(o.dev);  // the process's GPU: every kernel, buffer and handle below lives on it
    }
    bench::set_threads(static_cast<int>(threads));
    o.model = model;
    o.batch = batch.value_or(g_cuda ? 128 : 16);
    o.res = res.value_or(quick ? 28 : 96);
    o.timing.warmup = static_cast<int>(warmup.value_or(quick ? 1 : 2));
    o.timing.repeat = static_cast<int>(repeat.value_or(quick ? 3 : (g_cuda ? 20 : 5)));
    o.timing.flush = !no_flush;
    o.ops = app::split_list(ops);
    o.gemm_rows = !no_gemm && !quick;
    if (layout == "nhwc") o.layouts = {kernels::Layout::nhwc};
    if (layout == "both") o.layouts = {kernels::Layout::nchw, kernels::Layout::nhwc};
    const bool bf16 = precision == "bf16";

    std::string devname = kernels::cpu::cpu_description(), peak_note;
    if (g_cuda) {
#if ENGINE_HAVE_CUDA
      kernels::cuda::set_allow_tf32(precision == "tf32");
      cudaDeviceProp prop;
      BENCH_CUDA_CHECK(cudaGetDeviceProperties(&prop, o.dev.index));
      devname = prop.name;
#endif
      const bench::GpuPeaks* known = bench::find_gpu_peaks(devname);
      const double datasheet = !known                ? 0.0
                               : bf16                ? known->bf16_gflops
                               : precision == "tf32" ? known->tf32_gflops
                                                     : known->fp32_gflops;
      o.peak_gflops = peak_gflops.value_or(datasheet);
      o.peak_gbps = peak_gbps.value_or(known ? known->mem_gbps : 0.0);
      peak_note = peak_gflops || peak_gbps
                      ? "given"
                      : (known ? engine::cat(known->label, " datasheet, dense") : std::string("unknown"));
    } else {
      o.peak_gflops = peak_gflops ? *peak_gflops : measure_cpu_gflops(quick ? 1024 : 2048);
      o.peak_gbps = peak_gbps ? *peak_gbps : measure_cpu_gbps();
      peak_note = bf16 ? "measured here: OpenBLAS sgemm / triad; the CPU's bf16 GEMMs widen to float"
                       : "measured here: OpenBLAS sgemm / triad";
    }
    std::vector<std::pair<std::string, std::string>> columns = {
        {"op", "op"},          {"impl", "impl"},   {"dtype", "dtype"},    {"shape", "shape"},
        {"count", "count"},    {"ms", "ms (med)"}, {"ms_min", "min"},     {"ms_max", "max"},
        {"gflops", "GFLOP/s"}, {"gbps", "GB/s"},   {"pct_peak", "%peak"}, {"step_ms", "ms x count"}};
    if (o.peak_gflops <= 0 && o.peak_gbps <= 0)
      columns.erase(std::find_if(columns.begin(), columns.end(), [](const auto& c) { return c.first == "pct_peak"; }));
    bench::Output out(json, columns);
    out.note(engine::cat("bench_kernels on ", o.dev.str(), ": ", devname, ", ", bench::threads(),
                         " threads, load average ", bench::load_average(), ", ", bench::now_utc()));
    out.note(bench::thread_env());
    out.note(bench::blas_note());
    const std::string math = bf16 ? "precision bf16: bf16 activation kernels, float32 cross-entropy and SGD"
                             : precision == "tf32" ? (g_cuda ? "precision tf32: float32, TF32 GEMMs"
                                                             : "precision tf32: float32 (no TF32 on the CPU)")
                                                   : "precision fp32: float32";
    out.note(engine::cat(o.model, " batch ", o.batch, " at ", o.res, "x", o.res, ", ", math, ", conv layout ", layout,
                         "; warm-up ", o.timing.warmup, ", timed ", o.timing.repeat, " calls; cache ",
                         o.timing.flush ? (g_cuda ? "L2 flushed (256 MB written) before each call"
                                                  : "flushed (2 x LLC written) before each call")
                                        : "NOT flushed"));
    if (o.peak_gflops > 0 || o.peak_gbps > 0) {
      out.note(fmt::format("peaks for %peak: {:.0f} GFLOP/s, {:.1f} GB/s ({}; 0 = unknown, no %peak)", o.peak_gflops,
                           o.peak_gbps, peak_note));
    } else {
      out.note(engine::cat("peak unknown for ", devname,
                           " (not in the table of benchmarks/bench_common.h): no %peak column; give --peak-gflops "
                           "and --peak-gbps to have one"));
    }

    models::ModelConfig mc;
    auto model = models::create(o.model, mc);                                // for the SGD case's parameters
    const bench::NetShapes ns = bench::net_shapes(o.model, o.batch, o.res);  // a trace of the registry's model

    Bench b(o, out, json);
    if (bf16)
      b.step<kernels::bf16>(ns, *model);
    else
      b.step<float>(ns, *model);
    out.flush();
    b.print_estimate(engine::cat("per-op estimate of one ", o.model, " training step, batch ", o.batch, " at ", o.res,
                                 "x", o.res, ", precision ", precision));
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_kernels: error: {}\n", e.what());
    return 1;
  }
}
