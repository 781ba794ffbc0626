// Modules: a tree of named children, each owning named parameters and buffers. Names join with '.', so a
// ResNet's names read like torchvision's state_dict ("layer1.0.conv1.weight", "bn1.running_mean").
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/autograd.h"
#include "engine/tensor.h"
#include "kernels/layout.h"

namespace engine::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  Module() = default;
  virtual ~Module();
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  virtual Tensor forward(const Tensor& x) = 0;
  // Call modules as m(x), not m.forward(x): with detect-anomaly on (engine/autograd.h) the call names the module
  // that ops run in, and checks the module's buffers afterwards; an OpObserver sees the call (models/trace.h).
  Tensor operator()(const Tensor& x) {
    return scoped(x, [&] { return forward(x); });
  }

  // "layer3.1.bn2": the names this module and its ancestors were registered under, as in named_parameters() of
  // the root; "" for a module without a parent. A module registered twice keeps its first name.
  std::string path() const;

  NamedTensors named_parameters() const;  // depth-first, registration order
  NamedTensors named_buffers() const;
  std::vector<Tensor> parameters() const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const { return children_; }
  int64_t num_parameters() const;  // elements

  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // The memory order of the activations the layers of this tree take and give (kernels/layout.h): nchw, the
  // default, or nhwc (channels last), as PyTorch's model.to(memory_format=torch.channels_last). Parameters keep
  // their shapes (a conv weight stays [OC, C, KH, KW], so checkpoints are the same in either layout); the layers
  // pass the layout to their ops, so an NHWC model takes [N, H, W, C] input: nn::forward_logits converts an NCHW
  // batch once at the entry, and nn::Flatten gives NCHW order back.
  void set_layout(kernels::Layout layout);
  kernels::Layout layout() const { return layout_; }

  // Moves or converts every parameter and buffer in place (parameters stay leaves that require grad).
  void to(Device device);
  void to(DType dtype);
  void zero_grad();

  // Finds a parameter or buffer by its full name, or throws naming the closest module.
  Tensor& find(const std::string& name);

 protected:
  void register_parameter(const std::string& name, Tensor* t);
  void register_buffer(const std::string& name, Tensor* t);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    adopt(name, *m);
    children_.emplace_back(name, m);
    return m;
  }

  // Runs f() as this module's work on input x: what operator() does around forward(), for other entry points
  // (BatchNorm2d::forward_relu). With detect-anomaly off and no observer, a flag and a pointer test.
  template <class F>
  Tensor scoped(const Tensor& x, F&& f) {
    if (!detect_anomaly() && !op_observer()) return f();
    return scoped_checked(x, f);
  }

 private:
  void adopt(const std::string& name, Module& child);
  Tensor scoped_checked(const Tensor& x, const std::function<Tensor()>& f);
  std::string nonfinite_note(const std::string& path) const;
  void collect(const std::string& prefix, bool params, NamedTensors& out) const;
  template <class F>
  void for_each_slot(F&& f);  // f(Tensor&, bool is_param) over the whole tree

  std::vector<std::pair<std::string, Tensor*>> params_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
  kernels::Layout layout_ = kernels::Layout::nchw;
  const Module* parent_ = nullptr;  // cleared when the parent goes first
  std::string name_;                // under parent_
};

}  // namespace engine::nn
