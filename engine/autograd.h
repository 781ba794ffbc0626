// Tape autograd: each differentiable op output holds a Node whose backward closure maps the output's
// gradient to one gradient per input. Tensor::backward() walks nodes in reverse topological order,
// sums gradients (+=) and releases every node as soon as it has run, so the graph never outlives a step.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace engine {

// Returns one gradient per input (undefined where `need[i]` is false or the input is undefined).
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_out, const std::vector<bool>& need)>;

struct Node {
  std::string name;            // the op, for error messages
  std::vector<Tensor> inputs;  // graph edges; undefined entries allowed (e.g. a missing bias)
  BackwardFn backward;
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
void record(Tensor& out, const std::string& name, std::vector<Tensor> inputs, BackwardFn backward);

// Runs backward from `root` with seed gradient `grad` (same shape as root).
void run_backward(const Tensor& root, const Tensor& grad);

}  // namespace engine
