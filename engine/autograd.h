// Tape autograd: each differentiable op output holds a Node whose backward closure maps the output's
// gradient to one gradient per input. Tensor::backward() walks nodes in reverse topological order,
// sums gradients (+=) and releases every node as soon as it has run, so the graph never outlives a step.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace engine {

namespace nn {
class Module;
}

// Returns one gradient per input (undefined where `need[i]` is false or the input is undefined).
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_out, const std::vector<bool>& need)>;

struct Node {
  std::string name;            // the op, for error messages
  std::vector<Tensor> inputs;  // graph edges; undefined entries allowed (e.g. a missing bias)
  BackwardFn backward;
  std::string where;  // anomaly_where() when recorded with detect-anomaly on; else empty
};

// Grad mode is thread-local and on by default. NoGradGuard turns it off for a scope (eval, optimizer).
bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// True when grad mode is on and some input requires grad.
bool needs_grad(const std::vector<Tensor>& inputs);

// Records `out` as produced by op `name` from `inputs` when needs_grad(inputs). The closure must not capture
// `out` itself (that would be a reference cycle); capture inputs or separate saved tensors instead.
// Every op front-end calls it, also when nothing needs grad: it is where detect-anomaly checks forward outputs.
void record(Tensor& out, const std::string& name, std::vector<Tensor> inputs, BackwardFn backward);

// ---- op observation ----
// An observer sees every module call and every op of a forward, in order: what models/trace.h records to derive
// shapes, multiply-adds and memory from the modules' real forward() instead of a hand-written copy of it. Off
// (no observer), each op and module call pays one pointer test. Ops run inside backward closures are not seen.
class OpObserver {
 public:
  virtual ~OpObserver() = default;
  virtual void module_begin(const nn::Module& m, const Tensor& in) = 0;
  virtual void module_end(const nn::Module& m, const Tensor& out) = 0;
  // `out` as produced by op `name` (the name given to record()) from `inputs`.
  virtual void op(const std::string& name, const std::vector<Tensor>& inputs, const Tensor& out) = 0;
};
OpObserver* op_observer();
class ObserveOpsGuard {  // installs `o` on this thread for a scope
 public:
  explicit ObserveOpsGuard(OpObserver& o);
  ~ObserveOpsGuard();
  ObserveOpsGuard(const ObserveOpsGuard&) = delete;
  ObserveOpsGuard& operator=(const ObserveOpsGuard&) = delete;

 private:
  OpObserver* prev_;
};

// Runs backward from `root` with seed gradient `grad` (same shape as root).
void run_backward(const Tensor& root, const Tensor& grad);

// ---- detect-anomaly mode ----
// Thread-local like grad mode, off by default; off, each op and module call pays one flag test. On:
//  - forward: record() checks every op's output (whether or not it needs grad), and nn::Module checks its own
//    buffers after each call (BN's running statistics are updated in place, not by an op);
//  - backward: run_backward checks the seed, every gradient a node's backward returns and every sum of gradients.
// The first NaN or Inf throws AnomalyError naming forward or backward, the op, the module it ran in (the path of
// nn::Module names, torchvision-style: "layer3.1.bn2"), the tensor, its shape, the first bad index and value.
// Not checked: in-place updates outside ops and modules (the optimizer step: the next forward reports a
// non-finite parameter at the first op that reads it) and the ops run inside a backward closure (their result
// is checked as the gradient the closure returns). CUDA tensors are copied to the host for the check (one sync
// per op): a debugging mode.
bool detect_anomaly();
void set_detect_anomaly(bool on);
class DetectAnomalyGuard {  // sets the mode for a scope
 public:
  explicit DetectAnomalyGuard(bool on = true);
  ~DetectAnomalyGuard();
  DetectAnomalyGuard(const DetectAnomalyGuard&) = delete;
  DetectAnomalyGuard& operator=(const DetectAnomalyGuard&) = delete;

 private:
  bool prev_;
};

// Thrown by detect-anomaly mode; the message starts "detect-anomaly: ". The module the op ran in adds one note
// (its own non-finite parameters and buffers).
class AnomalyError : public EngineError {
 public:
  explicit AnomalyError(const std::string& msg) : EngineError(msg), msg_("detect-anomaly: " + msg) {}
  const char* what() const noexcept override { return msg_.c_str(); }
  void add_note(const std::string& note);

 private:
  std::string msg_;
  bool noted_ = false;
};

// The module ops are attributed to: nn::Module opens one scope per call while the mode is on. The path is ""
// for the top-level module; with no scope open, ops run "outside any module".
class AnomalyScope {
 public:
  explicit AnomalyScope(std::string module_path);
  ~AnomalyScope();
  AnomalyScope(const AnomalyScope&) = delete;
  AnomalyScope& operator=(const AnomalyScope&) = delete;
};
// "in module 'layer1.0.bn1'", "in the top-level module" or "outside any module".
std::string anomaly_where();

// The first NaN or Inf of a float tensor (int32 tensors have none), as "f32[2, 3] has nan at [1, 0]"; empty
// when every value is finite (or the tensor is undefined). CUDA tensors are copied to the host.
std::string describe_nonfinite(const Tensor& t);

}  // namespace engine
