// --cuda-graphs (engine/step_graph.h): on the CPU it says it is off and changes nothing; on CUDA a run whose
// steps are replays of one capture ends like the eager run, including when an eager step (an incomplete final
// batch) falls between replays and when the learning rate changes every step (cosine schedule, warm-up).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <string>

#include "apps/common/trainer.h"
#include "engine/device.h"
#include "engine/ops.h"
#include "engine/step_graph.h"
#include "tests/app/app_test_util.h"
#include "tests/app/tiny_run.h"
#include "tests/gradcheck.h"

namespace {

void require_close_history(const std::vector<app::EpochRecord>& a, const std::vector<app::EpochRecord>& b, double tol) {
  REQUIRE(a.size() == b.size());
  auto close = [tol](double x, double y) {
    return std::isfinite(x) && std::isfinite(y) && std::abs(x - y) <= tol * (1 + std::abs(y));
  };
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("epoch " << a[i].epoch << ": train loss " << a[i].train_loss << " vs " << b[i].train_loss << ", test loss "
                  << a[i].test_loss << " vs " << b[i].test_loss);
    REQUIRE(close(a[i].train_loss, b[i].train_loss));
    REQUIRE(close(a[i].val_loss, b[i].val_loss));
    REQUIRE(close(a[i].test_loss, b[i].test_loss));
    REQUIRE(a[i].lr == b[i].lr);
  }
}

}  // namespace

TEST_CASE("cuda graphs: on the CPU --cuda-graphs on says so and trains exactly as without", "[app][trainer][graphs]") {
  apptest::TempDir dir;
  app::clear_interrupt();
  app::TrainConfig off = apptest::tiny_config(dir / "off"), on = apptest::tiny_config(dir / "on");
  on.cuda_graphs = "on";
  const apptest::LoggedRun a = apptest::run_logged(off, 5), b = apptest::run_logged(on, 5);
  REQUIRE(b.result.status == app::TrainStatus::finished);
  REQUIRE_THAT(b.log, Catch::Contains("note: CUDA graphs need a CUDA"));
  REQUIRE_THAT(b.log, Catch::Contains("trains without them"));
  REQUIRE_THAT(a.log, !Catch::Contains("CUDA graphs"));
  REQUIRE(a.result.history.size() == b.result.history.size());
  for (size_t i = 0; i < a.result.history.size(); ++i)
    REQUIRE(a.result.history[i].train_loss == b.result.history[i].train_loss);
  apptest::require_same_tensors(dir / "off/last.safetensors", dir / "on/last.safetensors");
}

TEST_CASE("cuda graphs: a capture must follow at least one eager step", "[graphs]") {
  REQUIRE_THROWS_WITH(engine::StepGraph(true, engine::Device::cpu(), 0),
                      Catch::Contains("warmup_steps is 0; at least one eager step must come before a capture"));
  REQUIRE_NOTHROW(engine::StepGraph(true, engine::Device::cpu(), 1));
}

TEST_CASE("cuda graphs: replayed steps end like eager ones, with eager steps between replays",
          "[app][trainer][graphs][cuda]") {
  SKIP_WITHOUT_CUDA();
  apptest::TempDir dir;
  app::clear_interrupt();
  // batch 16: 3 full steps per epoch (warm-up 2, then capture and replays); batch 20: 20 + 20 + 8, so every epoch
  // ends with an eager step between replays. Cosine schedule with warm-up: a new lr every step.
  for (int64_t batch : {16, 20}) {
    DYNAMIC_SECTION("batch " << batch) {
      app::TrainConfig off = apptest::tiny_config(dir / ("off" + std::to_string(batch)));
      app::TrainConfig on = apptest::tiny_config(dir / ("on" + std::to_string(batch)));
      off.device = on.device = "cuda";
      off.batch_size = on.batch_size = batch;
      on.cuda_graphs = "on";
      const apptest::LoggedRun a = apptest::run_logged(off, 5), b = apptest::run_logged(on, 5);
      INFO(b.log);
      REQUIRE(b.result.status == app::TrainStatus::finished);
      REQUIRE_THAT(b.log, Catch::Contains("the training step is captured"));
      REQUIRE_THAT(b.log, !Catch::Contains("could not be captured"));
      // The same kernels with the same arguments: equal up to float reassociation that cuBLAS may choose
      // differently inside a capture (a few float32 ulps per step, grown over 9 steps; 1e-5 is ~80 ulps).
      require_close_history(b.result.history, a.result.history, 1e-5);
    }
  }
}

TEST_CASE("cuda graphs: a bad label met in a replay names the replay's call, not the capture's", "[graphs][cuda]") {
  SKIP_WITHOUT_CUDA();
  using namespace engine;
  const Device cuda = Device::cuda();
  Tensor logits = Tensor::zeros({4, 5}, DType::f32, cuda);
  Tensor labels = Tensor::from_vector({0, 1, 2, 3}, {4}, DType::i32, cuda);
  StepGraph graphs(true, cuda);
  const StepGraph::Step step = [&] { return std::vector<Tensor>{cross_entropy(logits, labels)}; };
  for (int i = 0; i < 4; ++i) graphs.run(step);  // 2 eager warm-up steps, the capture, one replay
  REQUIRE(graphs.active());
  REQUIRE(graphs.replays() >= 2);
  REQUIRE_NOTHROW(check_device_errors(cuda));                              // clean so far; the count starts again
  graphs.run(step);                                                        // call 1: still good
  labels.copy_(Tensor::from_vector({0, 7, 2, 3}, {4}, DType::i32, cuda));  // in place: the graph reads this memory
  graphs.run(step);                                                        // call 2: label 7 of 5 classes, in a replay
  // A count kept on the host would have been baked into the graph at capture (call 3 of that round).
  REQUIRE_THROWS_WITH(check_device_errors(cuda),
                      Catch::Contains("label 7 at row 1") && Catch::Contains("in call 2 of cross_entropy"));
}
