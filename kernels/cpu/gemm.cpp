// Row-major GEMM on the CPU through OpenBLAS (which threads internally), and the choice of OpenBLAS's kernels
// from the CPU's instruction-set flags (why and how: kernels/cpu/blas_info.h).
#include "kernels/gemm.h"

#include <cblas.h>
#include <dlfcn.h>
#include <strings.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "kernels/check.h"
#include "kernels/cpu/blas_info.h"
#include "kernels/cpu/compute_buffer.h"

namespace kernels::cpu {
namespace {

// ---- OpenBLAS's kernels from the CPU's instruction-set flags ----
enum class Isa { none, avx, avx2, avx512 };

// The widest vector instructions the kernels of an OpenBLAS core use (x86 cores; "none": generic SSE ones).
Isa isa_of_core(const char* core) {
  static const struct {
    const char* name;
    Isa isa;
  } kCores[] = {{"SkylakeX", Isa::avx512}, {"Cooperlake", Isa::avx512}, {"SapphireRapids", Isa::avx512},
                {"Haswell", Isa::avx2},    {"Zen", Isa::avx2},          {"Excavator", Isa::avx2},
                {"Sandybridge", Isa::avx}, {"Bulldozer", Isa::avx},     {"Piledriver", Isa::avx},
                {"Steamroller", Isa::avx}};
  for (const auto& c : kCores)
    if (strcasecmp(core, c.name) == 0) return c.isa;
  return Isa::none;
}

struct Selection {
  bool user_set = false;  // OPENBLAS_CORETYPE was in the environment: left alone
  bool switched = false;  // the engine replaced OpenBLAS's own choice
  std::string own;        // OpenBLAS's own choice
  std::string wanted;     // the core for this CPU's flags ("" when none applies)
  std::string flags;      // those flags, in words
  std::string cannot;     // why the engine could not switch ("" when it could or did not need to)
};

// The core for this CPU's flags: the ladder OpenBLAS 0.3.21 applies to the models it knows, applied to any
// model. SkylakeX and Cooperlake share their float/double kernels; Cooperlake adds BF16 ones and is what
// OpenBLAS picks itself for CPUs with AVX512-BF16. Zen is OpenBLAS's AVX2 core tuned for AMD.
// __builtin_cpu_supports also checks that the OS enabled the registers (XCR0), not only the CPUID bits.
Isa isa_of_this_cpu(Selection& s) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("avx512cd");
  if (avx512 && __builtin_cpu_supports("avx512bf16")) {
    s.wanted = "Cooperlake", s.flags = "AVX-512 with BF16";
    return Isa::avx512;
  }
  if (avx512) {
    s.wanted = "SkylakeX", s.flags = "AVX-512";
    return Isa::avx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    s.wanted = __builtin_cpu_is("amd") ? "Zen" : "Haswell", s.flags = "AVX2 and FMA";
    return Isa::avx2;
  }
  if (__builtin_cpu_supports("avx")) {
    s.wanted = "Sandybridge", s.flags = "AVX";
    return Isa::avx;
  }
#endif
  (void)s;  // other architectures: OpenBLAS's own detection stands
  return Isa::none;
}

// OpenBLAS (DYNAMIC_ARCH) picks its core from a table of CPU models in its constructor and falls back to generic
// SSE3 kernels ("Prescott") on a model it does not know, whatever the CPU's instruction set. When its choice
// uses narrower vectors than the CPU has, and the user did not set OPENBLAS_CORETYPE, the engine selects again
// through OpenBLAS's own path: gotoblas_dynamic_quit() forgets the core, gotoblas_dynamic_init() reads
// OPENBLAS_CORETYPE and initialises that core's parameters. Done before main(), before any BLAS call; the
// variable is removed again, so the program sees the environment as it was given. Looked up at run time: a
// build without DYNAMIC_ARCH has neither function and keeps its one core.
Selection select_openblas_core() {
  Selection s;
  s.own = openblas_get_corename();
  if (std::getenv("OPENBLAS_CORETYPE")) {
    s.user_set = true;
    return s;
  }
  const Isa cpu = isa_of_this_cpu(s);
  if (isa_of_core(s.own.c_str()) >= cpu) return s;
  auto quit = reinterpret_cast<void (*)()>(::dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit"));
  auto init = reinterpret_cast<void (*)()>(::dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init"));
  if (!quit || !init) {
    s.cannot = "this OpenBLAS has one core built in (no DYNAMIC_ARCH)";
    return s;
  }
  ::setenv("OPENBLAS_CORETYPE", s.wanted.c_str(), 1);
  quit();
  init();
  ::unsetenv("OPENBLAS_CORETYPE");
  s.switched = true;
  return s;
}

const Selection& selection() {
  static const Selection s = select_openblas_core();
  return s;
}

// Selects at start-up (static initialisation, one thread), not at the first GEMM inside a parallel program.
[[maybe_unused]] const Selection& g_selected_at_startup = selection();

// The value of the first "key<tab>: value" line of /proc/cpuinfo (text starts with a newline); "" if none.
std::string cpuinfo_field(const std::string& text, const char* key) {
  const size_t p = text.find(std::string("\n") + key);
  if (p == std::string::npos) return "";
  const size_t colon = text.find(':', p + 1), end = text.find('\n', p + 1);
  if (colon == std::string::npos || colon > end) return "";
  size_t b = colon + 1;
  while (b < end && text[b] == ' ') ++b;
  return text.substr(b, end - b);
}

// ---- GEMM ----

void check_blas_range(int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb, int64_t ldc) {
  constexpr int64_t kMax = std::numeric_limits<blasint>::max();
  KERNELS_CHECK(
      m >= 0 && n >= 0 && k >= 0 && m <= kMax && n <= kMax && k <= kMax && lda <= kMax && ldb <= kMax && ldc <= kMax,
      "gemm: sizes m=", m, " n=", n, " k=", k, " (lda ", lda, ", ldb ", ldb, ", ldc ", ldc,
      ") do not fit the BLAS integer type; split the problem");
}

void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
               int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta,
              c, blasint(ldc));
}
void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
               int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta,
              c, blasint(ldc));
}

}  // namespace

template <class T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, compute_t<T> alpha, const T* a, int64_t lda,
          const T* b, int64_t ldb, compute_t<T> beta, T* c, int64_t ldc) {
  check_blas_range(m, n, k, lda, ldb, ldc);
  if (m == 0 || n == 0) return;
  if (k == 0) {
    // BLAS would do this too, but some builds skip the beta scaling when k == 0.
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == T(0) ? T(0) : beta * c[i * ldc + j];
    return;
  }
  blas_gemm(trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb,
            beta, c, ldc);
}

// bf16: the operands widened to float (exactly), OpenBLAS's sgemm (float accumulation), C rounded to bf16 once:
// the semantics of cuBLAS's bf16 GEMM with CUBLAS_COMPUTE_32F, which the CUDA twin calls. Only C's m x n block
// is written back (ldc may leave gaps that belong to someone else).
template <>
void gemm<bf16>(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda,
                const bf16* b, int64_t ldb, float beta, bf16* c, int64_t ldc) {
  check_blas_range(m, n, k, lda, ldb, ldc);
  if (m == 0 || n == 0) return;
  const int64_t a_rows = trans_a ? k : m, a_cols = trans_a ? m : k, b_rows = trans_b ? n : k, b_cols = trans_b ? k : n;
  const Widened af(a, a_rows > 0 ? (a_rows - 1) * lda + a_cols : 0),
      bf(b, b_rows > 0 ? (b_rows - 1) * ldb + b_cols : 0);
  std::vector<float> cf(m * n, 0.f);
  if (beta != 0)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) cf[i * n + j] = bf16_to_float(c[i * ldc + j]);
  gemm<float>(trans_a, trans_b, m, n, k, alpha, af.data(), lda, bf.data(), ldb, beta, cf.data(), n);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = bf16_from_float(cf[i * n + j]);
}

template <class T>
void gemm_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, compute_t<T> alpha, const T* a,
                          int64_t lda, int64_t stride_a, const T* b, int64_t ldb, int64_t stride_b, compute_t<T> beta,
                          T* c, int64_t ldc, int64_t stride_c, int64_t batch) {
  for (int64_t i = 0; i < batch; ++i)
    gemm<T>(trans_a, trans_b, m, n, k, alpha, a + i * stride_a, lda, b + i * stride_b, ldb, beta, c + i * stride_c,
            ldc);
}

// The shared list keeps the CPU and CUDA twins' sets equal; bf16 is specialised above, so its entry only restates
// it (clang says so).
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Winstantiation-after-specialization"
#endif
KERNELS_GEMM_INSTANTIATIONS
#if defined(__clang__)
#pragma clang diagnostic pop
#endif

BlasInfo blas_info() {
  const Selection& s = selection();
  BlasInfo i;
  // openblas_get_config(): "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ..."
  const std::string config = openblas_get_config();
  const size_t sp1 = config.find(' '), sp2 = config.find(' ', sp1 + 1);
  i.library = config.substr(0, sp1);
  i.version = sp1 == std::string::npos ? "" : config.substr(sp1 + 1, sp2 - sp1 - 1);
  i.core = openblas_get_corename();
  i.threads = openblas_get_num_threads();
  if (s.user_set) {
    const char* v = std::getenv("OPENBLAS_CORETYPE");
    i.chosen_by = std::string("set by the user: OPENBLAS_CORETYPE=") + (v ? v : "");
  } else if (s.switched) {
    i.wanted = s.wanted;
    i.chosen_by = kernels::cat("chosen by the engine for the CPU's ", s.flags, "; OpenBLAS's own choice was ", s.own);
    if (strcasecmp(s.wanted.c_str(), i.core.c_str()) != 0)
      i.chosen_by += kernels::cat("; the engine asked for ", s.wanted, ", OpenBLAS did not take it");
  } else if (!s.cannot.empty()) {
    i.chosen_by = kernels::cat("OpenBLAS's own choice: the CPU has ", s.flags, ", but ", s.cannot);
  } else {
    i.chosen_by = "OpenBLAS's own choice";
  }
  return i;
}

std::string blas_description() {
  const BlasInfo i = blas_info();
  return kernels::cat(i.library, " ", i.version, " ", i.core, " kernels, ", i.threads, " threads (", i.chosen_by, ")");
}

std::string cpu_description() {
  std::ifstream f("/proc/cpuinfo");
  const std::string text = "\n" + std::string(std::istreambuf_iterator<char>(f), {});
  std::string name = cpuinfo_field(text, "model name");
  if (name.empty()) name = "unknown CPU";
  const std::string family = cpuinfo_field(text, "cpu family"), model = cpuinfo_field(text, "model\t");
  // The family and model say which generation it is when the name is as generic as "Intel(R) Xeon(R) Processor".
  if (!family.empty() && !model.empty()) name += kernels::cat(" (family ", family, " model ", model, ")");
  return kernels::cat(name, ", ", std::thread::hardware_concurrency(), " logical CPUs");
}

std::string machine_description() { return cpu_description() + "; " + blas_description(); }

}  // namespace kernels::cpu
