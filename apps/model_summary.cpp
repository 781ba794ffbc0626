// model_summary: per-stage output shapes, parameters, multiply-adds and activation memory of a registered model,
// from the analytic shape pass (no forward is run, so resnet152 at 224x224 is instant apart from building its
// weights).
//   model_summary resnet50 --input 3x224x224 --classes 1000 [--batch 128] [--stride-on-first-1x1] [--depth 2]
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <exception>
#include <string>

#include "apps/common/cli.h"
#include "engine/error.h"
#include "models/blocks.h"
#include "models/registry.h"
#include "models/summary.h"

namespace {

engine::Shape parse_shape(const std::string& s) {
  engine::Shape out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t x = s.find('x', start);
    std::string part = s.substr(start, x == std::string::npos ? std::string::npos : x - start);
    char* end = nullptr;
    long v = std::strtol(part.c_str(), &end, 10);
    ENGINE_CHECK(!part.empty() && *end == '\0' && v > 0, "--input: '", s, "' is not like 3x224x224");
    out.push_back(v);
    if (x == std::string::npos) break;
    start = x + 1;
  }
  ENGINE_CHECK(out.size() == 3 || out.size() == 4, "--input: '", s, "' needs 3 (CxHxW) or 4 (NxCxHxW) sizes");
  return out;
}

bool has_bottleneck(const engine::nn::Module& m) {
  if (dynamic_cast<const models::Bottleneck*>(&m)) return true;
  for (const auto& [name, child] : m.children())
    if (has_bottleneck(*child)) return true;
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  std::string name;
  engine::Shape input{1, 28, 28};
  models::ModelConfig cfg;
  int64_t depth = 1, batch = 0;
  CLI::App cli{
      "Per-stage output shapes, parameters, multiply-adds and activation memory of MODEL, from the analytic\n"
      "shape pass (no forward is run).",
      "model_summary"};
  app::configure_cli(cli, "model_summary MODEL [options]",
                     "models:\n  " + app::join(models::names(), " ") +
                         "\n\nexample:\n"
                         "  model_summary resnet50 --input 3x224x224 --classes 1000");
  cli.add_option("MODEL", name, "a name from the model zoo");
  app::add_option(cli, "input", "[N]xCxHxW",
                  "Input shape (default 1x28x28); C sets the stem's input channels, N the batch.",
                  [&](const std::string& v) { input = parse_shape(v); });
  app::add_option(cli, "batch", "N",
                  "Batch size for mult-adds and activation memory (default 0: the N of --input, else 1).",
                  [&](const std::string& v) { batch = app::parse_int(v, "batch", 0, 1 << 20); });
  app::add_option(cli, "classes", "K", "Number of classes (default 10).", [&](const std::string& v) {
    cfg.num_classes = static_cast<int>(app::parse_int(v, "classes", 1, 1 << 20));
  });
  app::add_option(cli, "stride-on-first-1x1", "",
                  "Bottleneck nets: down-sample in the first 1x1 (the paper) instead of the 3x3 (torchvision, the "
                  "default).",
                  [&](const std::string&) { cfg.stride_on_first_1x1 = true; });
  app::add_option(cli, "depth", "D", "1: one row per stage (default 1); 2: one row per block.",
                  [&](const std::string& v) { depth = app::parse_int(v, "depth", 1, 16); });
  if (std::optional<int> done = app::parse_cli(cli, argc, argv)) return *done;
  if (name.empty()) {
    fmt::print(stderr, "model_summary: error: no MODEL given; choose one of: {} (see model_summary --help)\n",
               app::join(models::names()));
    return 2;
  }
  try {
    if (batch > 0) {
      if (input.size() == 3) input.insert(input.begin(), batch);
      input[0] = batch;
    }
    cfg.in_channels = static_cast<int>(input[input.size() - 3]);
    auto model = models::create(name, cfg);
    std::string title = fmt::format("{} ({} classes", name, cfg.num_classes);
    if (has_bottleneck(*model))
      title += cfg.stride_on_first_1x1 ? ", bottleneck stride on the first 1x1 (paper)"
                                       : ", bottleneck stride on the 3x3 (torchvision)";
    title += ")";
    fmt::print("{}", models::format_summary(models::summarize(*model, input, static_cast<int>(depth)), title));
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "model_summary: error: {}\n", e.what());
    return 1;
  }
}
