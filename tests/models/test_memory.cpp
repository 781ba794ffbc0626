// The step-memory estimate (models/memory.h) against the real peak of a training step, the fit check and the
// available-memory parsing.
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/optim/sgd.h"
#include "engine/random.h"
#include "models/memory.h"
#include "models/registry.h"
#include "models/summary.h"
#include "tests/gradcheck.h"
#if ENGINE_HAVE_CUDA
#include "kernels/cuda/runtime.h"
#endif

using namespace engine;

namespace {

// How far the estimate may be from the measured peak, either way. CPU: 1%. The estimate models every tensor the
// step allocates, and for these configurations it matches the counters to a few bytes (the scalar seed of
// backward is not counted); its simplifications of the backward frontier (a pending shortcut gradient assumed
// for every op of a residual block) only matter when the peak falls inside a block's backward, which it does not
// here. A rule of the model broken (an op's output forgotten, BN's statistics, a gradient counted twice) moves
// it by more than 1%. CUDA: 25%, because the caching allocator rounds every block to 512 B and may hand out a
// cached block up to twice the size asked for.
constexpr double kCpuFactor = 1.01;
[[maybe_unused]] constexpr double kCudaFactor = 1.25;  // used only in CUDA builds

struct Counters {
  std::function<int64_t()> live, peak;
  std::function<void()> reset_peak;
};

// Peak bytes of the second of two training steps, as train_fmnist runs them (forward, loss, zero_grad,
// backward, SGD with momentum), above what was held before the model was built. The first step creates the
// momentum buffers; from the second on, the step is in its steady state.
int64_t measured_step_peak(const std::string& name, const Shape& input, Device device, const Counters& c) {
  default_generator().seed(7);
  const int64_t before = c.live();
  auto model = models::create(name);
  model->to(device);
  model->train();
  optim::SGD opt(model->parameters(), {0.05, 0.9, 5e-4, false});
  Tensor x = Tensor::empty(input, DType::f32, Device::cpu());
  normal_(x, 0.0, 1.0);
  std::vector<double> labels(input[0]);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<double>(i % 10);
  const Tensor y = Tensor::from_vector(labels, {input[0]}, DType::i32, device);
  x = x.to(device);
  auto step = [&] {
    Tensor loss = cross_entropy(model->forward(x), y);
    opt.zero_grad();
    loss.backward();
    opt.step();
  };
  step();
  c.reset_peak();
  step();
  return c.peak() - before;
}

Counters host_counters() {
  return {[] { return static_cast<int64_t>(host_storage_stats().live_bytes); },
          [] { return static_cast<int64_t>(host_storage_stats().peak_bytes); }, [] { reset_host_storage_peak(); }};
}

void check_close(const models::MemoryEstimate& e, int64_t estimated, int64_t measured, double factor) {
  INFO(models::describe(e));
  INFO("estimated " << estimated << " bytes, measured " << measured << " bytes, factor allowed " << factor);
  const double ratio = static_cast<double>(estimated) / static_cast<double>(measured);
  CHECK(std::isfinite(ratio));
  CHECK(ratio <= factor);
  CHECK(ratio >= 1.0 / factor);
}

}  // namespace

TEST_CASE("memory: the estimate is within a factor of the measured peak of a CPU step", "[models][memory]") {
  struct Case {
    const char* model;
    Shape input;
  };
  // resnet20: option-A shortcuts, 28 px; resnet18: max pool, projection shortcuts, a 7x7 stem.
  for (const Case& k : {Case{"resnet20", {8, 1, 28, 28}}, Case{"resnet18", {4, 1, 64, 64}},
                        Case{"resnet20", {2, 1, 224, 224}}, Case{"plain20", {2, 1, 224, 224}}}) {
    DYNAMIC_SECTION(k.model << " " << shape_str(k.input)) {
      const int64_t measured = measured_step_peak(k.model, k.input, Device::cpu(), host_counters());
      default_generator().seed(7);
      auto model = models::create(k.model);
      models::StepSpec spec;
      spec.input = k.input;
      const models::MemoryEstimate e = models::estimate_step_memory(*model, spec);
      // The per-thread conv scratch is not tensor storage: the counters cannot see it.
      check_close(e, e.tensor_peak(), measured, kCpuFactor);
      // The 224 px steps peak in backward (the last stage's input gradient outweighs the parameter gradients
      // not yet rebuilt), the others at the end of the forward: both parts of the timeline are checked.
      CHECK(e.peak_in_backward == (k.input[2] == 224));
    }
  }
}

TEST_CASE("memory: the estimate is within a factor of the CUDA allocator's peak", "[models][memory][cuda]") {
  SKIP_WITHOUT_CUDA();
#if ENGINE_HAVE_CUDA
  Counters cuda{[] { return static_cast<int64_t>(kernels::cuda::allocator_stats().allocated_bytes); },
                [] { return static_cast<int64_t>(kernels::cuda::allocator_stats().peak_allocated_bytes); },
                [] { kernels::cuda::reset_peak_stats(); }};
  const Shape input{32, 1, 28, 28};
  const int64_t measured = measured_step_peak("resnet20", input, Device::cuda(), cuda);
  auto model = models::create("resnet20");
  models::StepSpec spec;
  spec.input = input;
  spec.device = Device::cuda();
  const models::MemoryEstimate e = models::estimate_step_memory(*model, spec);
  check_close(e, e.tensor_peak(), measured, kCudaFactor);
#endif
}

TEST_CASE("memory: the estimate grows with batch and resolution and adds up", "[models][memory]") {
  auto model = models::create("resnet18");
  models::StepSpec spec;
  spec.input = {16, 1, 96, 96};
  const models::MemoryEstimate e = models::estimate_step_memory(*model, spec);
  REQUIRE(e.parameters == model->num_parameters() * 4);
  REQUIRE(e.gradients == e.parameters);
  REQUIRE(e.momentum == e.parameters);
  REQUIRE(e.peak == e.parameters + e.momentum + e.buffers + e.data + e.cpu_scratch + e.peak_activations +
                        e.peak_gradients + e.peak_in_flight);
  REQUIRE(e.peak_activations <= e.activations);
  REQUIRE(e.ops.front().name == "conv1");
  REQUIRE(e.ops.back().op == "cross_entropy");
  int64_t saved = 0;
  for (const auto& op : e.ops) saved += op.saved_bytes;
  REQUIRE(saved == e.activations);
  // conv1 at 96 px, stride 2: [16, 64, 48, 48] floats.
  REQUIRE(e.ops.front().saved_bytes == 16 * 64 * 48 * 48 * 4);

  spec.input[0] = 32;
  const models::MemoryEstimate twice = models::estimate_step_memory(*model, spec);
  // The activations are per example (BN statistics aside).
  REQUIRE(twice.activations > 2 * e.activations - e.activations / 100);
  REQUIRE(twice.activations < 2 * e.activations);
  spec.input = {16, 1, 192, 192};
  REQUIRE(models::estimate_step_memory(*model, spec).activations > 3 * e.activations);

  spec.input = {16, 1, 96, 96};
  spec.momentum = false;
  REQUIRE(models::estimate_step_memory(*model, spec).momentum == 0);
}

TEST_CASE("memory: a step replayed as a CUDA graph adds an evaluation forward beside its pool", "[models][memory]") {
  auto model = models::create("resnet18");
  models::StepSpec spec;
  spec.input = {16, 1, 96, 96};
  const models::MemoryEstimate eager = models::estimate_step_memory(*model, spec);
  REQUIRE(eager.evaluation == 0);
  spec.cuda_graph = true;
  const models::MemoryEstimate graph = models::estimate_step_memory(*model, spec);
  REQUIRE(graph.peak == eager.peak + graph.evaluation);
  // At least the largest activation (conv1's [16, 64, 48, 48] floats) and the scratch; at most three of them.
  const int64_t conv1 = 16 * 64 * 48 * 48 * 4;
  REQUIRE(graph.evaluation >= conv1 + graph.workspace);
  REQUIRE(graph.evaluation <= 3 * conv1 + graph.workspace);
  REQUIRE_THAT(models::describe(graph), Catch::Contains("evaluation beside the CUDA graph's pool"));
}

TEST_CASE("memory: the check refuses a step that cannot fit and names the largest batch", "[models][memory]") {
  auto model = models::create("resnet20");
  models::StepSpec spec;
  spec.input = {128, 1, 28, 28};
  auto peak_at = [&](int64_t batch) {
    models::StepSpec s = spec;
    s.input[0] = batch;
    return models::with_headroom(models::estimate_step_memory(*model, s).peak);
  };
  const int64_t available = peak_at(37) + 1;  // 37 fits, 38 does not
  REQUIRE(peak_at(38) > available);
  const models::MemoryFit f = models::check_step_memory(*model, spec, available);
  REQUIRE_FALSE(f.fits);
  REQUIRE(f.needed == peak_at(128));
  REQUIRE(f.largest_batch == 37);
  REQUIRE_THAT(f.message, Catch::Contains("does not fit") && Catch::Contains("--batch-size 37") &&
                              Catch::Contains(models::format_bytes(available)));

  const models::MemoryFit ok = models::check_step_memory(*model, spec, peak_at(128));
  REQUIRE(ok.fits);
  REQUIRE(ok.largest_batch == 128);

  const models::MemoryFit none = models::check_step_memory(*model, spec, peak_at(1) - 1);
  REQUIRE_FALSE(none.fits);
  REQUIRE(none.largest_batch == 0);
  REQUIRE_THAT(none.message, Catch::Contains("Not even a batch of 1"));
}

TEST_CASE("memory: resnet18 at 512 px, batch 128, is refused where it cannot fit", "[models][memory]") {
  // The run that was killed by the kernel. Its stem alone keeps conv1's, bn1's and relu's outputs,
  // [128, 64, 256, 256] floats of 2 GiB each, until backward.
  auto model = models::create("resnet18");
  models::StepSpec spec;
  spec.input = {128, 1, 512, 512};
  const models::MemoryEstimate e = models::estimate_step_memory(*model, spec);
  REQUIRE(e.ops.size() > 3);
  for (int i = 0; i < 3; ++i) REQUIRE(e.ops[i].out == Shape{128, 64, 256, 256});
  REQUIRE(e.ops[0].saved_bytes + e.ops[1].saved_bytes + e.ops[2].saved_bytes >= int64_t(6) << 30);
  const models::MemoryFit f = models::check_step_memory(*model, spec, int64_t(16) << 30);
  INFO(f.message);
  REQUIRE_FALSE(f.fits);
  REQUIRE(f.largest_batch > 64);
  REQUIRE(f.largest_batch < 128);
}

TEST_CASE("memory: available host memory from meminfo and the cgroup limit", "[models][memory]") {
  const std::string meminfo = "MemTotal:       24000000 kB\nMemFree:         1000000 kB\nMemAvailable:   20000000 kB\n";
  std::string source;
  REQUIRE(models::available_host_memory(meminfo, "", "", &source) == int64_t(20000000) * 1024);
  REQUIRE(source == "MemAvailable");
  REQUIRE(models::available_host_memory(meminfo, "max\n", "123\n", &source) == int64_t(20000000) * 1024);
  // A cgroup limit of 8 GiB with 1 GiB used leaves 7 GiB, less than MemAvailable.
  REQUIRE(models::available_host_memory(meminfo, "8589934592\n", "1073741824\n", &source) == int64_t(7) << 30);
  REQUIRE_THAT(source, Catch::Contains("cgroup"));
  REQUIRE_THROWS_WITH(models::available_host_memory("MemTotal: 1 kB\n", "", ""), Catch::Contains("MemAvailable"));
  REQUIRE(models::available_memory(Device::cpu()) > 0);
  REQUIRE(models::format_bytes(1536) == "1.5 KiB");
  REQUIRE(models::format_bytes(int64_t(24) << 30) == "24.0 GiB");
  REQUIRE(models::format_bytes(512) == "512 B");
}

TEST_CASE("memory: the summary's activation column adds up to the step's activations", "[models][memory][summary]") {
  auto model = models::create("resnet20");
  const models::Summary s = models::summarize(*model, {8, 1, 28, 28});
  models::StepSpec spec;
  spec.input = {8, 1, 28, 28};
  const models::MemoryEstimate e = models::estimate_step_memory(*model, spec);
  int64_t rows = 0;
  for (const auto& r : s.rows) rows += r.activation_bytes;
  // The loss keeps its gradient [8, 10] and the scalar loss; every other op belongs to a row.
  REQUIRE(rows + 8 * 10 * 4 + 4 == e.activations);
  REQUIRE(s.total_activation_bytes == e.activations);
  REQUIRE(s.step_peak_bytes == e.peak);
  // conv1 keeps its output, [8, 16, 28, 28] floats; bn1 its output and 2 x 16 statistics.
  REQUIRE(s.rows[0].activation_bytes == 8 * 16 * 28 * 28 * 4);
  REQUIRE(s.rows[1].activation_bytes == 8 * 16 * 28 * 28 * 4 + 2 * 16 * 4);
  const std::string text = models::format_summary(s, "resnet20");
  REQUIRE_THAT(text, Catch::Contains("activations") && Catch::Contains(models::format_bytes(e.activations)) &&
                         Catch::Contains("per example"));
}
