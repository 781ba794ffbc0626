// The real train_fmnist binary: exit codes promised by --help for bad usage and data, and the process name
// after the OpenMP re-exec.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "engine/checkpoint.h"
#include "engine/device.h"
#include "engine/ops.h"
#include "tests/app/app_test_util.h"

namespace {

using apptest::slurp;

// A --data folder with 12 training and 8 test images.
void write_data(const std::string& dir) {
  for (auto [prefix, n] : {std::pair<std::string, int>{"train", 12}, {"t10k", 8}}) {
    app::LabeledImages d = apptest::synthetic_images(n, 3);
    std::vector<uint8_t> labels(d.labels.begin(), d.labels.end());
    apptest::write_bytes(dir + "/" + prefix + "-images-idx3-ubyte", apptest::idx_images(n, 28, 28, d.pixels), false);
    apptest::write_bytes(dir + "/" + prefix + "-labels-idx1-ubyte", apptest::idx_labels(n, labels), false);
  }
}

struct Run {
  int code;
  std::string output;
};

Run run(const apptest::TempDir& dir, const std::string& args) {
  const std::string log = dir / "output.txt";
  const int status = std::system((std::string(TRAIN_FMNIST_BIN) + " " + args + " >" + log + " 2>&1").c_str());
  REQUIRE(WIFEXITED(status));
  return {WEXITSTATUS(status), slurp(log)};
}

}  // namespace

TEST_CASE("train_fmnist binary: usage and data errors exit 2 before training starts", "[app][cli]") {
  apptest::TempDir dir;
  write_data(dir.str());
  const std::string tiny = "resnet20 --resize 8 --batch-size 4 --epochs 1 --threads 1 --data " + dir.str();

  Run help = run(dir, "--help");
  REQUIRE(help.code == 0);
  REQUIRE_THAT(help.output, Catch::Contains("2 bad usage or data") && Catch::Contains("143 by SIGTERM") &&
                                Catch::Contains("--drop-last"));
  // Defaults, choices and the epilog's models and examples (the layout itself: tests/app/test_cli.cpp).
  REQUIRE_THAT(help.output, Catch::Contains("(default 0.05)") && Catch::Contains("Choices: none, step, cosine") &&
                                Catch::Contains("\nmodels:\n  resnet18 ") && Catch::Contains("\nexamples:\n"));

  // A good run first: exit 0, and a real checkpoint to damage below.
  Run ok = run(dir, tiny + " --device cpu --out " + dir / "good");
  INFO(ok.output);
  REQUIRE(ok.code == 0);
  const std::string ckpt = dir / "good/last.safetensors";
  REQUIRE(std::filesystem::exists(ckpt));

  for (const char* bad : {" --lr fast", " --lr=fast"}) {
    Run r = run(dir, tiny + bad);
    REQUIRE(r.code == 2);
    REQUIRE_THAT(r.output, Catch::Equals("train_fmnist: error: --lr: 'fast' is not a number\n"));
  }
  Run unknown = run(dir, tiny + " --momentun 0.5");
  REQUIRE(unknown.code == 2);
  REQUIRE_THAT(unknown.output, Catch::Contains("unknown option --momentun (did you mean --momentum?)"));
  REQUIRE(run(dir, tiny + " --epochs").code == 2);
  if (!engine::cuda_available()) {
    Run r = run(dir, tiny + " --device cuda --out " + dir / "x");
    REQUIRE(r.code == 2);
    REQUIRE_THAT(r.output, Catch::Contains("--device cuda needs CUDA"));
  }
  if (!engine::cudnn_compiled()) {
    Run r = run(dir, tiny + " --conv cudnn --out " + dir / "x");
    REQUIRE(r.code == 2);
    REQUIRE_THAT(r.output, Catch::Contains("--conv cudnn needs cuDNN"));
  }
  REQUIRE(run(dir, tiny + " --device cpu --conv fastest --out " + dir / "x").code == 2);
  Run file_out = run(dir, tiny + " --device cpu --out " + dir / "output.txt");
  REQUIRE(file_out.code == 2);
  REQUIRE_THAT(file_out.output, Catch::Contains("is an existing file, not a folder"));

  // --resume: garbage, a safetensors file that is no checkpoint, a checkpoint cut short, edited metadata.
  apptest::write_bytes(dir / "garbage.safetensors", {1, 2, 3, 4, 5, 6, 7, 8, 9}, false);
  REQUIRE(run(dir, "--resume " + dir / "garbage.safetensors").code == 2);
  engine::SafetensorsFile plain;
  plain.metadata["note"] = "not a checkpoint";
  engine::write_safetensors(dir / "plain.safetensors", plain);
  REQUIRE(run(dir, "--resume " + dir / "plain.safetensors").code == 2);
  std::string bytes = slurp(ckpt);
  std::ofstream(dir / "cut.safetensors", std::ios::binary).write(bytes.data(), bytes.size() - 100);
  Run cut = run(dir, "--resume " + dir / "cut.safetensors" + " --data " + dir.str() + " --out " + dir / "x");
  REQUIRE(cut.code == 2);
  REQUIRE_THAT(cut.output, Catch::Contains("cut.safetensors"));
  engine::SafetensorsFile edited = engine::read_safetensors(ckpt);
  edited.metadata["epoch"] = "-1";
  engine::write_safetensors(dir / "edited.safetensors", edited);
  Run bad = run(dir, "--resume " + dir / "edited.safetensors" + " --data " + dir.str() + " --out " + dir / "x");
  REQUIRE(bad.code == 2);
  REQUIRE_THAT(bad.output, Catch::Contains("edited.safetensors: metadata 'epoch' = '-1' is out of range"));
}

TEST_CASE("train_fmnist binary: the OpenMP re-exec keeps the program's name", "[app][cli]") {
  // --help writes more than the 4 KiB the pipe holds and blocks until we read: time to look at the process.
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  REQUIRE(::fcntl(fds[1], F_SETPIPE_SZ, 4096) >= 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::close(fds[0]);
    ::unsetenv("OMP_WAIT_POLICY");  // so that it relaunches itself
    ::execl(TRAIN_FMNIST_BIN, "train_fmnist", "--help", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[1]);
  const std::string proc = "/proc/" + std::to_string(pid);
  bool relaunched = false;
  for (int i = 0; i < 500 && !relaunched; ++i) {  // up to 5 s
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    relaunched = slurp(proc + "/environ").find(std::string("OMP_WAIT_POLICY=passive\0", 24)) != std::string::npos;
  }
  const std::string comm = slurp(proc + "/comm");
  const std::string cmdline = slurp(proc + "/cmdline");
  char buf[4096];
  while (::read(fds[0], buf, sizeof buf) > 0) {
  }
  ::close(fds[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(relaunched);
  REQUIRE(comm == "train_fmnist\n");
  REQUIRE(cmdline.rfind("train_fmnist", 0) == 0);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
}
