// --layout nhwc through the trainer: a channels-last run trains like the NCHW one (the same losses up to float
// round-off), writes a checkpoint with the same tensors (torchvision's shapes), and resumes in the other layout.
#include <catch2/catch.hpp>
#include <cmath>

#include "apps/common/trainer.h"
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
