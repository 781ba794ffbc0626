#include "engine/optim/param_groups.h"

#include <set>
#include <string>

#include "engine/nn/layers.h"

namespace engine::optim {

namespace {
void collect_bn_parameters(const nn::Module& m, const std::string& prefix, std::set<std::string>& out) {
  if (dynamic_cast<const nn::BatchNorm2d*>(&m))
    for (const auto& [name, t] : m.named_parameters()) out.insert(prefix.empty() ? name : prefix + "." + name);
  for (const auto& [name, child] : m.children())
    collect_bn_parameters(*child, prefix.empty() ? name : prefix + "." + name, out);
}

bool is_bias(const std::string& name) {
  const std::string suffix = ".bias";
  return name == "bias" ||
         (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0);
}
}  // namespace

DecaySplit split_weight_decay(const nn::Module& model) {
  std::set<std::string> bn;
  collect_bn_parameters(model, "", bn);
  DecaySplit s;
  for (auto& named : model.named_parameters())
    (bn.count(named.first) || is_bias(named.first) ? s.no_decay : s.decay).push_back(named);
  return s;
}

std::vector<ParamGroup> weight_decay_groups(const nn::Module& model, double weight_decay, bool no_decay_bn_bias) {
  if (!no_decay_bn_bias) return {ParamGroup{model.parameters(), weight_decay}};
  DecaySplit s = split_weight_decay(model);
  auto tensors = [](const nn::NamedTensors& named) {
    std::vector<Tensor> out;
    for (const auto& [name, t] : named) out.push_back(t);
    return out;
  };
  return {ParamGroup{tensors(s.decay), weight_decay}, ParamGroup{tensors(s.no_decay), 0.0}};
}

}  // namespace engine::optim
