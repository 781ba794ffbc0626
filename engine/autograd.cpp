#include "engine/autograd.h"

#include <cmath>
#include <unordered_map>
#include <unordered_set>

#include "engine/ops.h"

namespace engine {

namespace {
thread_local bool g_grad_enabled = true;
thread_local bool g_detect_anomaly = false;
thread_local bool g_in_backward = false;         // ops run by backward closures: their results are checked as gradients
thread_local std::vector<std::string> g_scopes;  // module paths, innermost last
thread_local OpObserver* g_observer = nullptr;
}  // namespace

OpObserver* op_observer() { return g_observer; }
ObserveOpsGuard::ObserveOpsGuard(OpObserver& o) : prev_(g_observer) { g_observer = &o; }
ObserveOpsGuard::~ObserveOpsGuard() { g_observer = prev_; }

bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = prev_; }

// ---------------- detect-anomaly ----------------
bool detect_anomaly() { return g_detect_anomaly; }
void set_detect_anomaly(bool on) { g_detect_anomaly = on; }
DetectAnomalyGuard::DetectAnomalyGuard(bool on) : prev_(g_detect_anomaly) { g_detect_anomaly = on; }
DetectAnomalyGuard::~DetectAnomalyGuard() { g_detect_anomaly = prev_; }

void AnomalyError::add_note(const std::string& note) {
  if (noted_) return;
  noted_ = true;
  msg_ += note;
}

AnomalyScope::AnomalyScope(std::string module_path) { g_scopes.push_back(std::move(module_path)); }
AnomalyScope::~AnomalyScope() { g_scopes.pop_back(); }

std::string anomaly_where() {
  if (g_scopes.empty()) return "outside any module";
  if (g_scopes.back().empty()) return "in the top-level module";
  return cat("in module '", g_scopes.back(), "'");
}

std::string describe_nonfinite(const Tensor& t) {
  if (!t.defined() || t.dtype() == DType::i32 || t.numel() == 0) return {};
  Tensor host = t;
  if (t.is_cuda()) {  // copy_ is not an op: no record(), no check of the copy
    host = Tensor::empty(t.shape(), t.dtype(), Device::cpu());
    host.copy_(t);
  }
  int64_t first = -1, count = 0;
  double value = 0;
  dispatch_storage("detect_anomaly", host.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = host.data<T>();
    const int64_t n = host.numel();
    for (int64_t i = 0; i < n; ++i) {
      const auto v = kernels::to_compute(p[i]);  // bf16 has no arithmetic of its own
      if (std::isfinite(v)) continue;
      if (count++ == 0) first = i, value = static_cast<double>(v);
    }
  });
  if (count == 0) return {};
  Shape index(t.shape().size());
  for (size_t d = index.size(), rest = static_cast<size_t>(first); d-- > 0;) {
    index[d] = static_cast<int64_t>(rest % static_cast<size_t>(t.shape()[d]));
    rest /= static_cast<size_t>(t.shape()[d]);
  }
  return cat(dtype_name(t.dtype()), shape_str(t.shape()), " has ",
             std::isnan(value) ? "nan"
             : value < 0       ? "-inf"
                               : "inf",
             " at ", shape_str(index), " (", count, " of ", t.numel(), " values are non-finite)");
}

namespace {
void check_forward(const Tensor& out, const std::string& op, const std::vector<Tensor>& inputs) {
  const std::string bad = describe_nonfinite(out);
  if (bad.empty()) return;
  std::string origin;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string in_bad = describe_nonfinite(inputs[i]);
    if (!in_bad.empty()) origin += cat("; input ", i, " of ", inputs.size(), " was already non-finite: ", in_bad);
  }
  origin = origin.empty() ? "; its inputs are finite, so the value appeared in this op"
                          : origin + " (not the output of a checked op: a parameter, a buffer or the model's input)";
  throw AnomalyError(cat("forward: op '", op, "' ", anomaly_where(), " produced a non-finite output: ", bad, origin));
}

std::string where_recorded(const Node& node) {
  return node.where.empty() ? "(module unknown: detect-anomaly was off when its forward ran)" : node.where;
}

// `what()` says which gradient it was; built only on failure.
template <class F>
void check_gradient(const Tensor& g, F&& what) {
  const std::string bad = describe_nonfinite(g);
  if (!bad.empty()) throw AnomalyError(cat("backward: ", what(), ": ", bad));
}

struct InBackward {
  bool prev = g_in_backward;
  InBackward() { g_in_backward = true; }
  ~InBackward() { g_in_backward = prev; }
};
}  // namespace

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!g_grad_enabled) return false;
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

void record(Tensor& out, const std::string& name, std::vector<Tensor> inputs, BackwardFn backward) {
  if (g_detect_anomaly && !g_in_backward) check_forward(out, name, inputs);
  if (g_observer && !g_in_backward) g_observer->op(name, inputs, out);
  if (!needs_grad(inputs)) return;
  auto node = std::make_shared<Node>();
  node->name = name;
  if (g_detect_anomaly) node->where = anomaly_where();
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
  NoGradGuard no_grad;  // gradients are plain values: no graph of the backward pass
  InBackward in_backward;
  const bool anomaly = g_detect_anomaly;
  if (anomaly) check_gradient(grad, [] { return "the seed gradient is non-finite"; });
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
      if (anomaly)
        check_gradient(in_grads[i], [&] {
          return cat("op '", node->name, "' ", where_recorded(*node), " returned a non-finite gradient for input ", i,
                     " of ", need.size(), " (the gradient it received is finite)");
        });
      Tensor leaf_grad;
      Tensor& slot = in.grad_fn() ? grads[in.grad_fn().get()] : (leaf_grad = in.grad());
      const bool summed = slot.defined();
      accumulate(slot, in_grads[i]);
      if (anomaly && summed)
        check_gradient(slot, [&] {
          return cat("adding up the gradients for input ", i, " of op '", node->name, "' ", where_recorded(*node),
                     " overflowed");
        });
      if (!in.grad_fn()) in.impl()->grad = leaf_grad.impl();
    }
    // Free saved tensors and edges now: memory does not grow step to step.
    node->backward = nullptr;
    node->inputs.clear();
  }
}

}  // namespace engine
