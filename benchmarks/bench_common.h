// Shared by the benchmark executables: timing (steady clock on CPU, CUDA events on GPU), statistics over
// repeats, cache flushing, thread control, memory high-water marks and the output (an aligned text table by
// default, JSON lines with --json). Arguments are parsed by CLI11 through apps/common/cli.h, as in the apps.
#pragma once
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/error.h"
#include "kernels/cpu/blas_info.h"

#if ENGINE_HAVE_CUDA
#include <cuda_runtime.h>

#include "kernels/cuda/common.cuh"
#endif

extern "C" void openblas_set_num_threads(int num_threads);

namespace bench {

// ---------------------------------------------------------------- statistics
struct Stats {
  double median = 0, min = 0, max = 0, q1 = 0, q3 = 0;
  int n = 0;
};

inline double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q * (v.size() - 1);
  const size_t lo = static_cast<size_t>(pos);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - lo) * (v[hi] - v[lo]);
}

inline Stats stats_of(const std::vector<double>& v) {
  Stats s;
  if (v.empty()) return s;
  s.n = static_cast<int>(v.size());
  s.median = quantile(v, 0.5);
  s.q1 = quantile(v, 0.25);
  s.q3 = quantile(v, 0.75);
  s.min = *std::min_element(v.begin(), v.end());
  s.max = *std::max_element(v.begin(), v.end());
  return s;
}

// ---------------------------------------------------------------- GPU peaks
// Dense (no sparsity) peaks of a GPU by the name cudaGetDeviceProperties reports, for the %peak columns: NVIDIA's
// product datasheets (boost clock), whose tensor figures "with sparsity" are twice the dense ones used here;
// GeForce cards from the Ampere GA102 and Ada AD102 whitepapers. docs/benchmarks.md has the table with sources.
// A name not listed gives no peaks: the benchmarks then say "peak unknown" and print no %peak, rather than guess.
struct GpuPeaks {
  const char* label;     // what the table calls it
  double fp32_gflops;    // FP32 CUDA cores
  double tf32_gflops;    // TF32 tensor cores
  double bf16_gflops;    // BF16 tensor cores, FP32 accumulate
  double mem_gbps;       // HBM / GDDR bandwidth
  const char* names[4];  // cudaDeviceProp::name spellings
};

inline const std::vector<GpuPeaks>& gpu_peak_table() {
  static const std::vector<GpuPeaks> table = {
      {"H100 SXM5 80GB", 67000, 494500, 989500, 3350, {"NVIDIA H100 80GB HBM3"}},
      {"H100 PCIe 80GB", 51000, 378000, 756500, 2000, {"NVIDIA H100 PCIe"}},
      {"H100 NVL 94GB", 60000, 417500, 835500, 3900, {"NVIDIA H100 NVL"}},
      {"H200 SXM 141GB", 67000, 494500, 989500, 4800, {"NVIDIA H200"}},
      {"H200 NVL 141GB", 60000, 417500, 835500, 4800, {"NVIDIA H200 NVL"}},
      {"A100 SXM4 40GB", 19500, 156000, 312000, 1555, {"NVIDIA A100-SXM4-40GB"}},
      {"A100 SXM4 80GB", 19500, 156000, 312000, 2039, {"NVIDIA A100-SXM4-80GB"}},
      {"A100 PCIe 40GB", 19500, 156000, 312000, 1555, {"NVIDIA A100-PCIE-40GB"}},
      {"A100 PCIe 80GB", 19500, 156000, 312000, 1935, {"NVIDIA A100 80GB PCIe"}},
      {"L40S", 91600, 183000, 362050, 864, {"NVIDIA L40S"}},
      {"L4", 30300, 60000, 121000, 300, {"NVIDIA L4"}},
      {"A10", 31200, 62500, 125000, 600, {"NVIDIA A10"}},
      {"GeForce RTX 3090", 35600, 35600, 71000, 936, {"NVIDIA GeForce RTX 3090"}},
      {"GeForce RTX 4090", 82600, 82600, 165200, 1008, {"NVIDIA GeForce RTX 4090"}},
  };
  return table;
}

// The entry whose reported name equals `device_name` (surrounding spaces ignored), or nullptr.
inline const GpuPeaks* find_gpu_peaks(const std::string& device_name) {
  const size_t b = device_name.find_first_not_of(' '), e = device_name.find_last_not_of(' ');
  const std::string name = b == std::string::npos ? std::string() : device_name.substr(b, e - b + 1);
  for (const GpuPeaks& g : gpu_peak_table())
    for (const char* n : g.names)
      if (n && name == n) return &g;
  return nullptr;
}

// ---------------------------------------------------------------- CUDA helpers
#if ENGINE_HAVE_CUDA
#define BENCH_CUDA_CHECK(expr)                                                                                      \
  do {                                                                                                              \
    cudaError_t err_ = (expr);                                                                                      \
    if (err_ != cudaSuccess)                                                                                        \
      ::engine::fail(::engine::cat(#expr, " failed at ", __FILE__, ":", __LINE__, ": ", cudaGetErrorString(err_))); \
  } while (0)

// A buffer bigger than the L2 (H100: 50 MB) written between repeats, so each repeat starts with a cold L2.
class GpuL2Flusher {
 public:
  explicit GpuL2Flusher(size_t bytes = 256u << 20) : bytes_(bytes) { BENCH_CUDA_CHECK(cudaMalloc(&buf_, bytes_)); }
  ~GpuL2Flusher() { cudaFree(buf_); }
  void flush() { BENCH_CUDA_CHECK(cudaMemsetAsync(buf_, static_cast<int>(++value_ & 0xff), bytes_, 0)); }
  size_t bytes() const { return bytes_; }

 private:
  void* buf_ = nullptr;
  size_t bytes_;
  unsigned value_ = 0;
};
#endif

// Writes a buffer of twice the last-level cache between CPU repeats, so each repeat starts cold (as it does
// inside a training step, where the previous layers have evicted this one's data).
class CpuCacheFlusher {
 public:
  explicit CpuCacheFlusher(size_t bytes) : buf_(bytes / sizeof(float), 0.f) {}
  void flush() {
    const float v = static_cast<float>(++value_);
    float* p = buf_.data();
    const int64_t n = static_cast<int64_t>(buf_.size());
#pragma omp parallel for
    for (int64_t i = 0; i < n; ++i) p[i] = v;
  }
  size_t bytes() const { return buf_.size() * sizeof(float); }

 private:
  std::vector<float> buf_;
  unsigned value_ = 0;
};

// Last-level cache size from sysfs (fallback 32 MB).
inline size_t llc_bytes() {
  size_t best = 0;
  for (int i = 0; i < 8; ++i) {
    std::ifstream f("/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/size");
    std::string s;
    if (!(f >> s)) continue;
    size_t v = std::strtoull(s.c_str(), nullptr, 10);
    if (!s.empty() && s.back() == 'K') v <<= 10;
    if (!s.empty() && s.back() == 'M') v <<= 20;
    best = std::max(best, v);
  }
  return best ? best : (32u << 20);
}

// ---------------------------------------------------------------- timing
struct TimingOptions {
  int warmup = 2;
  int repeat = 10;
  bool flush = true;
};

// Times fn() `repeat` times after `warmup` untimed calls; flush() (if given) runs before each call, untimed.
// Returns milliseconds per call.
inline std::vector<double> time_cpu(const std::function<void()>& fn, const TimingOptions& o,
                                    const std::function<void()>& flush = {}) {
  for (int i = 0; i < o.warmup; ++i) {
    if (flush) flush();
    fn();
  }
  std::vector<double> ms;
  for (int i = 0; i < o.repeat; ++i) {
    if (flush) flush();
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    const auto t1 = std::chrono::steady_clock::now();
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  return ms;
}

#if ENGINE_HAVE_CUDA
// CUDA events around each call on the engine's stream (kernels/cuda/common.cuh); the flush is enqueued before the
// start event, so it is not timed. One synchronisation at the end, none between repeats.
inline std::vector<double> time_cuda(const std::function<void()>& fn, const TimingOptions& o,
                                     const std::function<void()>& flush = {}) {
  for (int i = 0; i < o.warmup; ++i) {
    if (flush) flush();
    fn();
  }
  BENCH_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<cudaEvent_t> ev(2 * o.repeat);
  for (auto& e : ev) BENCH_CUDA_CHECK(cudaEventCreate(&e));
  for (int i = 0; i < o.repeat; ++i) {
    if (flush) flush();
    BENCH_CUDA_CHECK(cudaEventRecord(ev[2 * i], kernels::cuda::stream()));
    fn();
    BENCH_CUDA_CHECK(cudaEventRecord(ev[2 * i + 1], kernels::cuda::stream()));
  }
  BENCH_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<double> ms;
  for (int i = 0; i < o.repeat; ++i) {
    float t = 0;
    BENCH_CUDA_CHECK(cudaEventElapsedTime(&t, ev[2 * i], ev[2 * i + 1]));
    ms.push_back(t);
  }
  for (auto& e : ev) BENCH_CUDA_CHECK(cudaEventDestroy(e));
  return ms;
}
#endif

// ---------------------------------------------------------------- threads, memory, machine
// Same thread count for our OpenMP loops and OpenBLAS (and, in pytorch_reference.py, torch.set_num_threads).
inline void set_threads(int n) {
  if (n <= 0) return;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}
inline int threads() { return omp_get_max_threads(); }

// Peak resident set (VmHWM) of this process in MB, and its reset (Linux >= 4.0: writing 5 to clear_refs).
inline double proc_status_mb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const size_t len = std::strlen(key);
  while (std::getline(f, line))
    if (line.compare(0, len, key) == 0) return std::strtod(line.c_str() + len + 1, nullptr) / 1024.0;
  return 0;
}
inline double vm_hwm_mb() { return proc_status_mb("VmHWM"); }
inline double vm_rss_mb() { return proc_status_mb("VmRSS"); }
inline void reset_vm_hwm() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
}

// The environment that decides how threads wait and how many BLAS runs: printed with every result.
inline std::string thread_env() {
  std::string o;
  for (const char* k : {"OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_NUM_THREADS"}) {
    const char* v = std::getenv(k);
    o += std::string(o.empty() ? "" : ", ") + k + "=" + (v ? v : "unset");
  }
  return o;
}

// The BLAS and the kernel set the CPU GEMMs run on: printed with every result.
inline std::string blas_note() { return "BLAS: " + kernels::cpu::blas_description(); }

inline double load_average() {
  std::ifstream f("/proc/loadavg");
  double l = -1;
  f >> l;
  return l;
}

inline std::string now_utc() { return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(std::time(nullptr))); }

// ---------------------------------------------------------------- output
// A record is an ordered list of (key, value); numbers are kept as numbers in JSON.
struct Field {
  std::string key;
  std::string text;             // for the table
  nlohmann::ordered_json json;  // for --json: a string or a number, at full precision
};

class Record {
 public:
  Record& s(const std::string& k, const std::string& v) {
    fields_.push_back({k, v, v});
    return *this;
  }
  Record& i(const std::string& k, int64_t v) {
    fields_.push_back({k, std::to_string(v), v});
    return *this;
  }
  // prec: digits after the point in the table; JSON keeps every digit (NaN and infinities become null).
  Record& f(const std::string& k, double v, int prec = 2) {
    fields_.push_back({k, fmt::format("{:.{}f}", v, prec), v});
    return *this;
  }
  const std::vector<Field>& fields() const { return fields_; }
  // One line; invalid UTF-8 in a string (a device name?) is replaced rather than aborting a finished benchmark.
  std::string json() const {
    nlohmann::ordered_json o = nlohmann::ordered_json::object();
    for (const auto& f : fields_) o[f.key] = f.json;
    return o.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  }

 private:
  std::vector<Field> fields_;
};

// Prints records as JSON lines (immediately) or as one aligned table (at flush()); `columns` picks and
// orders the table's columns by key (all keys of the first record when empty).
class Output {
 public:
  Output(bool json, std::vector<std::pair<std::string, std::string>> columns)
      : json_(json), columns_(std::move(columns)) {}
  void add(const Record& r) {
    if (json_) {
      fmt::print("{}\n", r.json());
      std::fflush(stdout);
    } else {
      rows_.push_back(r);
    }
  }
  // A comment line: "# ..." in both modes (JSON readers skip lines starting with '#').
  void note(const std::string& s) {
    fmt::print("# {}\n", s);
    std::fflush(stdout);
  }
  void flush() {
    if (json_ || rows_.empty()) return;
    std::vector<size_t> width;
    for (const auto& c : columns_) width.push_back(c.second.size());
    std::vector<std::vector<std::string>> cells;
    for (const auto& r : rows_) {
      std::vector<std::string> row;
      for (size_t c = 0; c < columns_.size(); ++c) {
        std::string v = "-";
        for (const auto& f : r.fields())
          if (f.key == columns_[c].first) v = f.text;
        width[c] = std::max(width[c], v.size());
        row.push_back(v);
      }
      cells.push_back(row);
    }
    auto line = [&](const std::vector<std::string>& row) {
      std::string o;  // the first column left-aligned (names), the others right-aligned (numbers)
      for (size_t c = 0; c < row.size(); ++c) {
        if (c == 0)
          fmt::format_to(std::back_inserter(o), "{:<{}}", row[c], width[c]);
        else
          fmt::format_to(std::back_inserter(o), "  {:>{}}", row[c], width[c]);
      }
      fmt::print("{}\n", o);
    };
    std::vector<std::string> head;
    for (const auto& c : columns_) head.push_back(c.second);
    line(head);
    std::vector<std::string> rule;
    for (size_t w : width) rule.push_back(std::string(w, '-'));
    line(rule);
    for (const auto& row : cells) line(row);
    rows_.clear();
    std::fflush(stdout);
  }

 private:
  bool json_;
  std::vector<std::pair<std::string, std::string>> columns_;
  std::vector<Record> rows_;
};

}  // namespace bench
