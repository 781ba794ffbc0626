// --layout nhwc through the trainer: a channels-last run trains like the NCHW one (the same losses up to float
// round-off), writes a checkpoint with the same tensors (torchvision's shapes), and resumes in the other layout;
// --layout auto picks the layout that ran faster and leaves the run as if it had been named.
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <thread>

#include "apps/common/config.h"
#include "apps/common/trainer.h"
#include "engine/checkpoint.h"
#include "engine/nn/layers.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "tests/app/app_test_util.h"
#include "tests/app/tiny_run.h"

using namespace apptest;

TEST_CASE("trainer: --layout nhwc trains as nchw, same checkpoint tensors, resumable in nchw", "[app][trainer][nhwc]") {
  TempDir dir;
  app::clear_interrupt();
  const app::FashionMnist data = tiny_data();
  app::TrainConfig a = tiny_config(dir / "nchw"), b = tiny_config(dir / "nhwc");
  b.layout = "nhwc";
  const app::TrainResult ra = app::train(a, tiny_net(4), data, quiet());
  const app::TrainResult rb = app::train(b, tiny_net(4), data, quiet());
  REQUIRE(rb.status == app::TrainStatus::finished);
  // float32, the same math with the sums in another order (batch norm over N*H*W, the linear layer over its 196
  // inputs, the conv over C*KH*KW): each step's results differ by a few u = 2^-24 relative, and 9 SGD steps at
  // lr <= 0.05 grow that by well under 100x, so losses agree to 1e-4; a layout bug changes them in the first digit.
  REQUIRE(ra.history.size() == rb.history.size());
  for (size_t i = 0; i < ra.history.size(); ++i) {
    const auto &x = ra.history[i], &y = rb.history[i];
    INFO("epoch " << x.epoch << ": train loss " << x.train_loss << " vs " << y.train_loss << ", test loss "
                  << x.test_loss << " vs " << y.test_loss);
    for (auto [u, v] : {std::pair{x.train_loss, y.train_loss}, std::pair{x.val_loss, y.val_loss},
                        std::pair{x.test_loss, y.test_loss}}) {
      REQUIRE(std::isfinite(u));
      REQUIRE(std::abs(u - v) <= 1e-4 * (1 + std::abs(u)));
    }
  }
  require_same_tensors(dir / "nchw/last.safetensors", dir / "nhwc/last.safetensors", /*shapes_only=*/true);
  // The layout may change on resume: the channels-last checkpoint goes on in NCHW.
  app::TrainConfig more = tiny_config(dir / "nhwc");
  more.resume = dir / "nhwc/last.safetensors";
  more.epochs = 4;
  const app::TrainResult rc = app::train(more, tiny_net(5), data, quiet());
  REQUIRE(rc.status == app::TrainStatus::finished);
  REQUIRE(rc.history.size() == 4);
  REQUIRE(std::isfinite(rc.history.back().train_loss));
}

TEST_CASE("choose_layout: the layout whose calls ran faster, the buffers as they were", "[app][trainer][nhwc]") {
  // The calls advance a clock of the test's own, so the decision is exact whatever else loads the machine (a real
  // clock with a 200 ms sleep and a 100 ms margin still failed under ctest -j2 on 2 cores, where OpenMP threads
  // descheduled at their barriers stretch a sub-millisecond call past that). The slow layout costs 200 ms a call;
  // the fast one costs nothing except 5000 ms in its warm-up and 1000 ms in its first timed call, so counting the
  // warm-up or taking a mean instead of the median (1000/3 > 200) would choose the slow layout.
  std::shared_ptr<engine::nn::Module> net = tiny_net(4);
  const engine::Tensor x =
      engine::randn({8, 1, 14, 14}, engine::DType::f32, engine::Device::cpu(), engine::default_generator());
  const engine::Tensor y = engine::Tensor::from_vector({0, 1, 2, 3, 4, 5, 6, 7}, {8}, engine::DType::i32);
  const std::vector<double> mean_before = net->find("1.running_mean").to_vector();
  auto require_as_before = [&] {
    // Eight training-mode forwards moved the running mean; choose_layout put it back, and left no gradient.
    REQUIRE(net->find("1.running_mean").to_vector() == mean_before);
    for (const auto& [name, p] : net->named_parameters()) {
      INFO(name);
      REQUIRE(!p.grad().defined());
    }
  };
  auto fwd_bwd = [&] {
    engine::Tensor loss = engine::cross_entropy(engine::nn::forward_logits(*net, x, engine::DType::f32), y);
    loss.backward();
    return loss.detach();
  };
  for (kernels::Layout slow : {kernels::Layout::nchw, kernels::Layout::nhwc}) {
    INFO("slow layout " << engine::layout_name(slow));
    double clock = 0;
    int calls = 0, fast_calls = 0;
    const app::LayoutTiming t = app::choose_layout(
        *net,
        [&] {
          ++calls;
          if (net->layout() == slow)
            clock += 200;
          else if (++fast_calls <= 2)
            clock += fast_calls == 1 ? 5000 : 1000;
          return fwd_bwd();
        },
        3, [&] { return clock; });
    INFO("nchw " << t.nchw_ms << " ms, nhwc " << t.nhwc_ms << " ms");
    REQUIRE(calls == 2 * (1 + t.repeats));  // one warm-up and `repeats` timed calls per layout
    REQUIRE(t.repeats == 3);
    REQUIRE(t.chosen != slow);
    REQUIRE(net->layout() == t.chosen);
    REQUIRE((slow == kernels::Layout::nchw ? t.nchw_ms : t.nhwc_ms) == 200);
    REQUIRE((slow == kernels::Layout::nchw ? t.nhwc_ms : t.nchw_ms) == 0);
    require_as_before();
  }
  // The default clock times the whole call: a 20 ms sleep in NHWC shows in its median (sleep_for sleeps at least
  // that long; how long the rest takes on a loaded machine is not asserted).
  const app::LayoutTiming t = app::choose_layout(*net, [&] {
    if (net->layout() == kernels::Layout::nhwc) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return fwd_bwd();
  });
  INFO("nchw " << t.nchw_ms << " ms, nhwc " << t.nhwc_ms << " ms");
  REQUIRE(t.nhwc_ms >= 20);
  REQUIRE(t.nchw_ms > 0);
  REQUIRE(t.chosen == (t.nhwc_ms < t.nchw_ms ? kernels::Layout::nhwc : kernels::Layout::nchw));
  REQUIRE(net->layout() == t.chosen);
  require_as_before();
}

TEST_CASE("trainer: --layout auto says what it timed, records its choice and trains exactly as that layout",
          "[app][trainer][nhwc]") {
  TempDir dir;
  app::clear_interrupt();
  app::TrainConfig a = tiny_config(dir / "auto");
  a.layout = "auto";
  const LoggedRun ra = run_logged(a, 4);
  REQUIRE(ra.result.status == app::TrainStatus::finished);
  INFO(ra.log);
  REQUIRE(ra.log.find("layout auto: a forward and backward of 16 examples took ") != std::string::npos);
  const std::string last = dir / "auto/last.safetensors";
  const std::string chosen =
      app::config_from_metadata(engine::read_safetensors_metadata(last), last).layout;  // what a resume reads
  REQUIRE((chosen == "nchw" || chosen == "nhwc"));
  REQUIRE(ra.log.find("; training in " + chosen + "\n") != std::string::npos);
  REQUIRE(slurp(dir / "auto/config.json").find("\"layout\": \"" + chosen + "\"") != std::string::npos);
  // The timing calls leave no trace: the run that names the layout ends with the same bytes in every tensor
  // (weights, batch-norm running statistics, momentum) and the same losses.
  app::TrainConfig b = tiny_config(dir / "named");
  b.layout = chosen;
  const app::TrainResult rb = app::train(b, tiny_net(4), tiny_data(), quiet());
  REQUIRE(rb.status == app::TrainStatus::finished);
  require_same_tensors(last, dir / "named/last.safetensors");
  REQUIRE(ra.result.history.size() == rb.history.size());
  for (size_t i = 0; i < rb.history.size(); ++i) {
    REQUIRE(ra.result.history[i].train_loss == rb.history[i].train_loss);
    REQUIRE(ra.result.history[i].test_loss == rb.history[i].test_loss);
  }
}
