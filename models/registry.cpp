#include "models/registry.h"

#include <functional>

#include "engine/error.h"
#include "models/resnet.h"

namespace models {

namespace {

struct Entry {
  std::string name;
  std::function<std::shared_ptr<engine::nn::Module>(const ModelConfig&)> make;
};

// The one list of models. Table 1 (ImageNet) and Sec. 4.2 (CIFAR, depth 6n+2) of He et al. 2016.
const std::vector<Entry>& entries() {
  static const std::vector<Entry> list = [] {
    std::vector<Entry> v;
    const struct {
      int depth;
      BlockType block;
      std::vector<int> stages;
    } imagenet[] = {{18, BlockType::basic, {2, 2, 2, 2}},
                    {34, BlockType::basic, {3, 4, 6, 3}},
                    {50, BlockType::bottleneck, {3, 4, 6, 3}},
                    {101, BlockType::bottleneck, {3, 4, 23, 3}},
                    {152, BlockType::bottleneck, {3, 8, 36, 3}}};
    for (const auto& e : imagenet) {
      std::string name = "resnet" + std::to_string(e.depth);
      ResNetSpec spec{e.block, e.stages};
      v.push_back({name, [name, spec](const ModelConfig& cfg) { return imagenet_resnet(name, spec, cfg); }});
    }
    for (bool plain : {false, true})
      for (int depth : {20, 32, 44, 56, 110}) {
        std::string name = (plain ? "plain" : "resnet") + std::to_string(depth);
        const int n = (depth - 2) / 6;
        v.push_back({name, [name, n, plain](const ModelConfig& cfg) { return cifar_resnet(name, n, plain, cfg); }});
      }
    return v;
  }();
  return list;
}

}  // namespace

std::vector<std::string> names() {
  std::vector<std::string> out;
  for (const auto& e : entries()) out.push_back(e.name);
  return out;
}

std::shared_ptr<engine::nn::Module> create(const std::string& name, const ModelConfig& cfg) {
  for (const auto& e : entries())
    if (e.name == name) return e.make(cfg);
  std::string valid;
  for (const auto& e : entries()) valid += (valid.empty() ? "" : ", ") + e.name;
  engine::fail(engine::cat("unknown model '", name, "'; valid names: ", valid));
}

}  // namespace models
