// model_summary: per-stage output shapes, parameters, multiply-adds and activation memory of a registered model,
// from the analytic shape pass (no forward is run, so resnet152 at 224x224 is instant apart from building its
// weights).
//   model_summary resnet50 --input 3x224x224 --classes 1000 [--batch 128] [--stride-on-first-1x1] [--depth 2]
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>

#include "engine/error.h"
#include "models/blocks.h"
#include "models/registry.h"
#include "models/summary.h"

namespace {

void usage(std::FILE* to) {
  std::string list;
  for (const auto& n : models::names()) list += (list.empty() ? "" : ", ") + n;
  std::fprintf(to,
               "usage: model_summary MODEL [--input CxHxW | NxCxHxW] [--batch N] [--classes K]\n"
               "                           [--stride-on-first-1x1] [--depth D]\n"
               "  --input                 input shape (default 1x28x28); C sets the stem's input channels\n"
               "  --batch                 batch size N for mult-adds and activation memory (default 1, or the\n"
               "                          N of --input)\n"
               "  --classes               number of classes (default 10)\n"
               "  --stride-on-first-1x1   bottleneck nets: down-sample in the first 1x1 (the paper) instead of the\n"
               "                          3x3 (torchvision, the default)\n"
               "  --depth                 1: one row per stage (default); 2: one row per block\n"
               "models: %s\n",
               list.c_str());
}

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

int parse_int(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  long x = std::strtol(v.c_str(), &end, 10);
  ENGINE_CHECK(!v.empty() && *end == '\0' && x > 0, flag, ": '", v, "' is not a positive integer");
  return static_cast<int>(x);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string name;
    engine::Shape input{1, 28, 28};
    models::ModelConfig cfg;
    int depth = 1, batch = 0;
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      auto value = [&]() -> std::string {
        ENGINE_CHECK(i + 1 < argc, a, " needs a value");
        return argv[++i];
      };
      if (a == "-h" || a == "--help") {
        usage(stdout);
        return 0;
      } else if (a == "--input") {
        input = parse_shape(value());
      } else if (a == "--classes") {
        cfg.num_classes = parse_int(a, value());
      } else if (a == "--batch") {
        batch = parse_int(a, value());
      } else if (a == "--depth") {
        depth = parse_int(a, value());
      } else if (a == "--stride-on-first-1x1") {
        cfg.stride_on_first_1x1 = true;
      } else if (!a.empty() && a[0] == '-') {
        engine::fail("unknown option " + a);
      } else {
        ENGINE_CHECK(name.empty(), "one model name expected, got '", name, "' and '", a, "'");
        name = a;
      }
    }
    if (name.empty()) {
      usage(stderr);
      return 2;
    }
    if (batch > 0) {
      if (input.size() == 3) input.insert(input.begin(), batch);
      input[0] = batch;
    }
    cfg.in_channels = static_cast<int>(input[input.size() - 3]);
    auto model = models::create(name, cfg);
    std::string title = name + " (" + std::to_string(cfg.num_classes) + " classes";
    if (has_bottleneck(*model))
      title += cfg.stride_on_first_1x1 ? ", bottleneck stride on the first 1x1 (paper)"
                                       : ", bottleneck stride on the 3x3 (torchvision)";
    title += ")";
    std::cout << models::format_summary(models::summarize(*model, input, depth), title);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "model_summary: %s\n", e.what());
    return 1;
  }
}
