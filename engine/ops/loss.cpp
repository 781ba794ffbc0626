#include "engine/ops.h"
#include "engine/ops/common.h"
#include "kernels/cross_entropy.h"

namespace engine {

Tensor cross_entropy(const Tensor& logits, const Tensor& labels, double label_smoothing) {
  constexpr const char* op = "cross_entropy";
  check_dim(op, "logits (N, C)", logits, 2);
  check_dim(op, "labels (N)", labels, 1);
  check_computable(op, "logits", logits);
  ENGINE_CHECK(labels.dtype() == DType::i32, op, ": labels must be int32 class indices, got ",
               dtype_name(labels.dtype()), " (build them with DType::i32)");
  ENGINE_CHECK(labels.device() == logits.device(), op, ": labels are on ", labels.device().str(), " but logits are on ",
               logits.device().str(), "; move them with .to(Device)");
  ENGINE_CHECK(labels.size(0) == logits.size(0), op, ": ", labels.size(0), " labels for logits ",
               shape_str(logits.shape()), " (", logits.size(0), " rows)");
  ENGINE_CHECK(logits.size(0) > 0 && logits.size(1) > 0, op, ": logits ", shape_str(logits.shape()), " are empty");
  ENGINE_CHECK(label_smoothing >= 0 && label_smoothing <= 1, op, ": label_smoothing must be in [0, 1], got ",
               label_smoothing);

  const kernels::CrossEntropyShape s{logits.size(0), logits.size(1), label_smoothing};
  Tensor loss = Tensor::empty({}, compute_dtype(logits.dtype()), logits.device());  // never rounded to storage
  // The gradient (softmax - target) / N comes out of the same pass; only kept when backward can ask for it.
  Tensor saved_grad;
  if (needs_grad({logits})) saved_grad = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
  // CPU: an immediate error. CUDA: no host sync in the step; the kernel files a bad label in the device's record,
  // raised by check_device_errors() when results are read (MetricsAccumulator::read).
  if (!logits.is_cuda()) {
    const int64_t bad_row = kernels::cpu::first_bad_label(labels.data<int32_t>(), s);
    if (bad_row >= 0) fail(cat(op, ": ", kernels::bad_label_text(labels.data<int32_t>()[bad_row], bad_row, s)));
  }
  dispatch_compute(op, logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* grad = saved_grad.defined() ? saved_grad.data<T>() : nullptr;
    ENGINE_KERNEL(op, logits, cross_entropy_forward<T>, logits.data<T>(), labels.data<int32_t>(),
                  loss.data<kernels::compute_t<T>>(), grad, s);
  });

  if (saved_grad.defined()) {
    record(loss, op, {logits}, [saved_grad](const Tensor& g, const std::vector<bool>&) {
      Tensor gx = Tensor::empty(saved_grad.shape(), saved_grad.dtype(), saved_grad.device());
      dispatch_compute("cross_entropy backward", saved_grad.dtype(), [&](auto tag) {
        using T = decltype(tag);
        ENGINE_KERNEL("cross_entropy backward", saved_grad, cross_entropy_backward<T>, saved_grad.data<T>(),
                      g.data<kernels::compute_t<T>>(), gx.data<T>(), gx.numel());
      });
      return std::vector<Tensor>{gx};
    });
  } else {
    record(loss, op, {logits}, nullptr);  // nothing needs grad, so no node: only detect-anomaly's check of the loss
  }
  return loss;
}

}  // namespace engine
