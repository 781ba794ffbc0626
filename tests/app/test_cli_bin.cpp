// Every program (apps and benchmarks) parses its command line the same way (apps/common/cli.h over CLI11): a
// --help with usage, options and defaults (exit 0), and usage errors that name the flag and what is allowed
// (exit 2, before any work starts).
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/app/app_test_util.h"

namespace {

struct Run {
  int code;
  std::string output;
};

Run run(const std::string& bin, const std::string& args) {
  apptest::TempDir dir;
  const std::string log = dir / "output.txt";
  const int status = std::system((bin + " " + args + " >" + log + " 2>&1").c_str());
  REQUIRE(WIFEXITED(status));
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  return {WEXITSTATUS(status), ss.str()};
}

struct Program {
  std::string name, bin;
  std::string option_line;  // a line of its --help
  std::string bad_value;    // arguments with one bad value ...
  std::string bad_message;  // ... and what the error must say
  std::string needs_value;  // a flag that takes a value
};

const std::vector<Program>& programs() {
  static const std::vector<Program> all = {
      {"train_fmnist", TRAIN_FMNIST_BIN, "  --lr LR                   Peak learning rate of SGD (default 0.05).",
       "resnet20 --schedule=linear", "--schedule: 'linear' is not one of: none, step, cosine", "lr"},
      {"evaluate", EVALUATE_BIN, "  --batch-size N            Examples per forward pass (default 256).",
       "x.safetensors --model resnet19", "--model: 'resnet19' is not one of: resnet18, resnet34", "model"},
      {"model_summary", MODEL_SUMMARY_BIN, "  --classes K               Number of classes (default 10).",
       "resnet20 --depth=0", "--depth: 0 is outside [1, 16]", "input"},
      {"plot_runs", PLOT_RUNS_BIN, "  --width PX                Width of each panel (default 560).", "x --height 5",
       "--height: 5 is outside [200, 8192]", "out"},
      {"bench_kernels", BENCH_KERNELS_BIN, "  --device DEV              cpu, cuda or cuda:N (default cpu).",
       "--model=resnet19", "--model: 'resnet19' is not one of: resnet18, resnet34, resnet50, resnet101, resnet152",
       "ops"},
      {"bench_models", BENCH_MODELS_BIN, "  --steps N                 Timed steps (default CPU 5, CUDA 20).",
       "--engines native,winograd", "--engines: 'winograd' is not one of: native, cudnn, fastest", "batch"},
  };
  return all;
}

}  // namespace

TEST_CASE("every program: --help, unknown options, bad and missing values", "[app][cli]") {
  for (const Program& p : programs()) {
    INFO(p.name);
    Run help = run(p.bin, "--help");
    CHECK(help.code == 0);
    CHECK_THAT(help.output, Catch::StartsWith("usage: " + p.name) && Catch::Contains("\noptions:\n") &&
                                Catch::Contains("\n" + p.option_line + "\n") &&
                                Catch::Contains("\n  -h, --help                Show this help and exit.\n"));
    CHECK(run(p.bin, "-h").output == help.output);

    Run unknown = run(p.bin, "--jsn");
    CHECK(unknown.code == 2);
    CHECK_THAT(unknown.output, Catch::StartsWith(p.name + ": error: unknown option --jsn") &&
                                   Catch::Contains("; see " + p.name + " --help"));

    Run bad = run(p.bin, p.bad_value);
    CHECK(bad.code == 2);
    CHECK_THAT(bad.output, Catch::StartsWith(p.name + ": error: " + p.bad_message));

    Run missing = run(p.bin, "--" + p.needs_value);
    CHECK(missing.code == 2);
    CHECK_THAT(missing.output, Catch::Contains("--" + p.needs_value + " needs a value"));
  }
  // Several positionals, options between them.
  Run runs = run(PLOT_RUNS_BIN, "a --labels x b");
  REQUIRE(runs.code == 2);
  REQUIRE_THAT(runs.output, Catch::Contains("--labels has 1 names for 2 runs"));
  // --name=VALUE and --name VALUE reach the program alike.
  Run eq = run(MODEL_SUMMARY_BIN, "resnet20 --depth=2 --input=1x28x28");
  Run sp = run(MODEL_SUMMARY_BIN, "resnet20 --depth 2 --input 1x28x28");
  REQUIRE(eq.code == 0);
  REQUIRE_THAT(eq.output, Catch::Contains("layer1.0"));
  REQUIRE(eq.output == sp.output);
}

// bench_kernels --precision: the activation-kernel rows run in bf16 on the CPU too (widened to float there), the
// compute-only rows (cross-entropy, SGD) stay float32 and say so, and --tf32 is still the older spelling.
TEST_CASE("bench_kernels: --precision bf16 rows on the CPU, float32 compute-only rows, --tf32 spelling",
          "[app][bench]") {
  // A tiny resnet18 step (batch 2 at 8x8), no warm-up, one timed call per row, peaks given (none measured).
  const std::string tiny =
      "--device cpu --model resnet18 --batch 2 --resize 8 --warmup 0 --repeat 1 --no-flush --threads 1 "
      "--peak-gflops 100 --peak-gbps 10 --json";
  Run bf16 = run(BENCH_KERNELS_BIN, tiny + " --precision bf16");
  INFO(bf16.output);
  REQUIRE(bf16.code == 0);
  CHECK_THAT(bf16.output, Catch::Contains("resnet18 batch 2 at 8x8, precision bf16: bf16 activation kernels"));
  std::map<std::string, std::string> dtype_of;  // op -> the dtype its rows report
  std::istringstream lines(bf16.output);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    const nlohmann::json r = nlohmann::json::parse(line);
    if (r.contains("summary")) continue;  // the per-op estimate
    const std::string op = r.at("op");
    INFO(line);
    CHECK((dtype_of.count(op) == 0 || dtype_of[op] == r.at("dtype")));
    dtype_of[op] = r.at("dtype");
    for (const char* k : {"ms", "ms_min", "ms_max", "gflops", "gbps", "pct_peak", "step_ms"}) {
      REQUIRE(r.at(k).is_number());  // NaN would be written as null
      CHECK(std::isfinite(r.at(k).get<double>()));
      CHECK(r.at(k).get<double>() >= 0);
    }
  }
  std::istringstream bf16_ops(
      "conv_fwd conv_bwd conv_bwd_data conv_bwd_weight conv_im2col conv_col2im conv_gemm_fwd conv_gemm_bwd_data "
      "conv_gemm_bwd_weight bn_fwd bn_bwd relu_fwd relu_bwd add maxpool_fwd maxpool_bwd avgpool_fwd avgpool_bwd "
      "linear_fwd linear_bwd");
  for (std::string op; bf16_ops >> op;) {
    INFO(op);
    CHECK(dtype_of[op] == "bfloat16");
  }
  for (const char* op : {"ce_fwd", "ce_bwd", "sgd"}) {
    INFO(op);
    CHECK(dtype_of[op] == "float32");
  }

  Run tf32 = run(BENCH_KERNELS_BIN, tiny + " --tf32 1 --ops relu");
  REQUIRE(tf32.code == 0);
  CHECK_THAT(tf32.output, Catch::Contains("precision tf32: float32") &&
                              Catch::Contains("\"op\":\"relu_fwd\",\"impl\":\"native\",\"dtype\":\"float32\""));
  Run bad = run(BENCH_KERNELS_BIN, "--precision fp16");
  CHECK(bad.code == 2);
  CHECK_THAT(bad.output, Catch::Contains("--precision: 'fp16' is not one of: fp32, tf32, bf16"));
}

TEST_CASE("bench_models: --layout nchw,nhwc times a whole step in both layouts", "[app][bench][nhwc]") {
  Run r = run(BENCH_MODELS_BIN,
              "--device cpu --models resnet20 --batch 2 --res 8 --warmup 0 --steps 1 --threads 1 --layout nchw,nhwc "
              "--json");
  INFO(r.output);
  REQUIRE(r.code == 0);
  std::vector<std::string> layouts;
  std::istringstream lines(r.output);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    const nlohmann::json rec = nlohmann::json::parse(line);
    layouts.push_back(rec.at("layout"));
    REQUIRE(rec.at("step_ms").is_number());
    CHECK(rec.at("step_ms").get<double>() > 0);
  }
  CHECK(layouts == std::vector<std::string>{"nchw", "nhwc"});
  Run bad = run(BENCH_MODELS_BIN, "--layout nwhc");
  CHECK(bad.code == 2);
  CHECK_THAT(bad.output, Catch::Contains("--layout: 'nwhc' is not one of: nchw, nhwc"));
}
