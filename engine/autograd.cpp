#include "engine/autograd.h"

#include <unordered_map>
#include <unordered_set>

#include "engine/ops/elementwise.h"

namespace engine {

namespace {
thread_local bool g_grad_enabled = true;
}

bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = prev_; }

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!g_grad_enabled) return false;
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

void record(Tensor& out, const std::string& name, std::vector<Tensor> inputs, BackwardFn backward) {
  if (!needs_grad(inputs)) return;
  auto node = std::make_shared<Node>();
  node->name = name;
  node->inputs = std::move(inputs);
  node->backward = std::move(backward);
  out.set_requires_grad(true);
  out.set_grad_fn(std::move(node));
}

namespace {
// Reverse topological order of the nodes reachable from `root` (iterative DFS: ResNet-152 is deep). Owning
// pointers: releasing a node's inputs during the walk must not destroy nodes still to be visited.
std::vector<std::shared_ptr<Node>> topo_order(const std::shared_ptr<Node>& root) {
  std::vector<std::shared_ptr<Node>> order;
  std::unordered_set<Node*> seen{root.get()};
  std::vector<std::pair<std::shared_ptr<Node>, size_t>> stack{{root, 0}};
  while (!stack.empty()) {
    Node* node = stack.back().first.get();
    size_t& next = stack.back().second;
    if (next < node->inputs.size()) {
      const Tensor& in = node->inputs[next++];
      if (in.defined() && in.grad_fn() && seen.insert(in.grad_fn().get()).second) stack.push_back({in.grad_fn(), 0});
    } else {
      order.push_back(std::move(stack.back().first));
      stack.pop_back();
    }
  }
  return {order.rbegin(), order.rend()};  // root first
}

void accumulate(Tensor& slot, const Tensor& g) { slot = slot.defined() ? add(slot, g) : g; }
}  // namespace

void run_backward(const Tensor& root, const Tensor& grad) {
  ENGINE_CHECK(root.defined() && root.requires_grad(), "backward(): tensor ", root.str(),
               " does not require grad (did you run the forward pass under NoGradGuard?)");
  ENGINE_CHECK(grad.shape() == root.shape(), "backward(): seed gradient ", shape_str(grad.shape()),
               " does not match tensor ", shape_str(root.shape()));
  NoGradGuard no_grad;    // gradients are plain values: no graph of the backward pass
  if (!root.grad_fn()) {  // a leaf
    Tensor g = root.grad();
    accumulate(g, grad);
    root.impl()->grad = g.impl();
    return;
  }
  std::unordered_map<Node*, Tensor> grads{{root.grad_fn().get(), grad}};
  for (const auto& node_ptr : topo_order(root.grad_fn())) {
    Node* node = node_ptr.get();
    ENGINE_CHECK(node->backward, "backward(): the graph through '", node->name,
                 "' was already freed by an earlier backward(); run the forward pass again");
    auto it = grads.find(node);
    if (it == grads.end()) continue;  // no gradient reached this node
    Tensor g = std::move(it->second);
    grads.erase(it);
    std::vector<bool> need(node->inputs.size());
    for (size_t i = 0; i < need.size(); ++i) need[i] = node->inputs[i].defined() && node->inputs[i].requires_grad();
    std::vector<Tensor> in_grads = node->backward(g, need);
    ENGINE_CHECK(in_grads.size() == node->inputs.size(), "backward of '", node->name, "' returned ", in_grads.size(),
                 " gradients for ", node->inputs.size(), " inputs");
    for (size_t i = 0; i < need.size(); ++i) {
      if (!need[i] || !in_grads[i].defined()) continue;
      const Tensor& in = node->inputs[i];
      ENGINE_CHECK(in_grads[i].shape() == in.shape(), "backward of '", node->name, "': gradient ",
                   shape_str(in_grads[i].shape()), " for input ", i, " of shape ", shape_str(in.shape()));
      if (in.grad_fn()) {
        accumulate(grads[in.grad_fn().get()], in_grads[i]);
      } else {
        Tensor leaf_grad = in.grad();
        accumulate(leaf_grad, in_grads[i]);
        in.impl()->grad = leaf_grad.impl();
      }
    }
    // Free saved tensors and edges now: memory does not grow step to step.
    node->backward = nullptr;
    node->inputs.clear();
  }
}

}  // namespace engine
