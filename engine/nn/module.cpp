#include "engine/nn/module.h"

#include "engine/error.h"

namespace engine::nn {

Module::~Module() {
  for (auto& [name, child] : children_)
    if (child->parent_ == this) child->parent_ = nullptr;
}

void Module::adopt(const std::string& name, Module& child) {
  if (child.parent_) return;
  child.parent_ = this;
  child.name_ = name;
}

std::string Module::path() const {
  std::string out;
  for (const Module* m = this; m->parent_; m = m->parent_) out = out.empty() ? m->name_ : m->name_ + "." + out;
  return out;
}

namespace {
std::string join_name(const std::string& path, const std::string& name) {
  return path.empty() ? name : path + "." + name;
}
}  // namespace

std::string Module::nonfinite_note(const std::string& path) const {
  std::string note;
  for (const auto* list : {&params_, &buffers_})
    for (const auto& [name, t] : *list) {
      const std::string bad = describe_nonfinite(*t);
      if (!bad.empty()) note += cat("; ", join_name(path, name), " is non-finite: ", bad);
    }
  return note;
}

Tensor Module::scoped_checked(const Tensor& x, const std::function<Tensor()>& f) {
  OpObserver* observer = op_observer();
  if (observer) observer->module_begin(*this, x);
  Tensor y;
  if (!detect_anomaly()) {
    y = f();
  } else {
    const std::string where = path();
    AnomalyScope scope(where);
    try {
      y = f();
    } catch (AnomalyError& e) {
      e.add_note(nonfinite_note(where));  // the innermost module, where the op ran
      throw;
    }
    // Buffers change in place (BN's running statistics), not through an op's output.
    for (const auto& [name, t] : buffers_) {
      const std::string bad = describe_nonfinite(*t);
      if (!bad.empty())
        throw AnomalyError(cat("forward: buffer ", join_name(where, name),
                               " was left non-finite by its module's forward (it changes "
                               "in place): ",
                               bad));
    }
  }
  if (observer) observer->module_end(*this, y);
  return y;
}

void Module::register_parameter(const std::string& name, Tensor* t) {
  t->set_requires_grad(true);
  params_.emplace_back(name, t);
}

void Module::register_buffer(const std::string& name, Tensor* t) { buffers_.emplace_back(name, t); }

void Module::collect(const std::string& prefix, bool params, NamedTensors& out) const {
  for (const auto& [name, t] : params ? params_ : buffers_) out.emplace_back(prefix + name, *t);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", params, out);
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  collect("", true, out);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  collect("", false, out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::set_layout(kernels::Layout layout) {
  layout_ = layout;
  for (auto& [name, child] : children_) child->set_layout(layout);
}

template <class F>
void Module::for_each_slot(F&& f) {
  for (auto& [name, t] : params_) f(*t, true);
  for (auto& [name, t] : buffers_) f(*t, false);
  for (auto& [name, child] : children_) child->for_each_slot(f);
}

void Module::to(Device device) {
  for_each_slot([&](Tensor& t, bool is_param) {
    t = t.detach().to(device);
    if (is_param) t.set_requires_grad(true);
  });
}

void Module::to(DType dtype) {
  for_each_slot([&](Tensor& t, bool is_param) {
    if (t.dtype() == DType::i32) return;
    t = t.detach().to(dtype);
    if (is_param) t.set_requires_grad(true);
  });
}

void Module::zero_grad() {
  for_each_slot([](Tensor& t, bool is_param) {
    if (is_param) t.zero_grad();
  });
}

Tensor& Module::find(const std::string& name) {
  auto dot = name.find('.');
  if (dot == std::string::npos) {
    for (auto& [n, t] : params_)
      if (n == name) return *t;
    for (auto& [n, t] : buffers_)
      if (n == name) return *t;
  } else {
    std::string head = name.substr(0, dot);
    for (auto& [n, child] : children_)
      if (n == head) return child->find(name.substr(dot + 1));
  }
  fail(cat("no parameter or buffer named '", name, "'"));
}

}  // namespace engine::nn
