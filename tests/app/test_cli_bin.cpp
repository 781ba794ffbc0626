// Every program (apps and benchmarks) parses its command line the same way (apps/common/cli.h over CLI11): a
// --help with usage, options and defaults (exit 0), and usage errors that name the flag and what is allowed
// (exit 2, before any work starts).
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
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
