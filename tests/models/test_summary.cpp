// The summary library: rows, totals, depth, formatting and errors.
#include <catch2/catch.hpp>

#include "engine/nn/layers.h"
#include "models/registry.h"
#include "models/summary.h"
#include "models/trace.h"

using namespace engine;

TEST_CASE("summary: rows per stage or per block, totals, formatting", "[models][summary]") {
  auto model = models::create("resnet20");  // 1 channel, 10 classes
  auto s = models::summarize(*model, {1, 28, 28});
  std::vector<std::string> names;
  for (const auto& r : s.rows) names.push_back(r.name);
  REQUIRE(names == std::vector<std::string>{"conv1", "bn1", "relu", "layer1", "layer2", "layer3", "avgpool", "fc"});
  REQUIRE(s.input == Shape{1, 1, 28, 28});
  REQUIRE(s.rows[5].output == Shape{1, 64, 7, 7});
  int64_t params = 0;
  for (const auto& r : s.rows) params += r.params;
  REQUIRE(params == s.total_params);
  REQUIRE(s.total_params == model->num_parameters());
  // conv1: 16 filters of 1x3x3 at 28x28; fc: 64x10.
  REQUIRE(s.rows[0].macs == 16 * 9 * 28 * 28);
  REQUIRE(s.rows[7].macs == 640);

  auto blocks = models::summarize(*model, {4, 1, 28, 28}, 2);
  REQUIRE(blocks.rows.size() == 3 + 9 + 2);
  REQUIRE(blocks.rows[3].name == "layer1.0");
  REQUIRE(blocks.rows[6].name == "layer2.0");
  REQUIRE(blocks.rows[6].output == Shape{4, 32, 14, 14});
  REQUIRE(blocks.total_macs == 4 * s.total_macs);  // MACs scale with the batch

  std::string text = models::format_summary(s, "resnet20");
  REQUIRE_THAT(text, Catch::Contains("layer3") && Catch::Contains(models::with_commas(s.total_params)) &&
                         Catch::Contains("[1, 10]"));
  REQUIRE(models::with_commas(25557032) == "25,557,032");
  REQUIRE(models::with_commas(999) == "999");
  REQUIRE(models::with_commas(-1000) == "-1,000");
}

TEST_CASE("summary: errors name the problem", "[models][summary]") {
  auto model = models::create("resnet20");
  REQUIRE_THROWS_WITH(models::summarize(*model, {1, 28}), Catch::Contains("[C, H, W] or [N, C, H, W]"));
  // The trace runs the real forward, so shape errors are the ops' own.
  REQUIRE_THROWS_WITH(models::summarize(*model, {3, 64, 64}), Catch::Contains("input has 3 channels"));
  REQUIRE_THROWS_WITH(models::summarize(*model, {1, 28, 28}, 0), Catch::Contains("depth must be >= 1"));
  nn::Conv2d conv(1, 1, 3, 1, 0);
  REQUIRE_THROWS_WITH(models::trace_forward(conv, {1, 1, 2, 2}), Catch::Contains("larger than the padded input"));
  const models::Trace t = models::trace_forward(conv, {2, 1, 4, 5});
  REQUIRE(t.output == Shape{2, 1, 2, 3});
  REQUIRE(t.macs() == 2 * 2 * 3 * 9);
  REQUIRE_THROWS_WITH(models::trace_forward(conv, {1, 4, 5}), Catch::Contains("[N, C, H, W]"));
}
