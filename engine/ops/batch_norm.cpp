#include "kernels/batch_norm.h"

#include <type_traits>

#include "engine/ops.h"
#include "engine/ops/common.h"

namespace engine {
namespace {

constexpr const char* kOp = "batch_norm2d";
BatchNormEngine g_engine = BatchNormEngine::native;

template <class T>
T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

void check_per_channel(const char* op, const char* what, const Tensor& t, const Tensor& x, int64_t c) {
  if (!t.defined()) return;
  ENGINE_CHECK(t.shape() == Shape{c}, op, ": ", what, " has shape ", shape_str(t.shape()), " but x ",
               shape_str(x.shape()), " has ", c, " channels; expected [", c, "]");
}

}  // namespace

void set_batch_norm_engine(BatchNormEngine e) {
  ENGINE_CHECK(e != BatchNormEngine::cudnn || cudnn_compiled(),
               "set_batch_norm_engine: cuDNN was asked for, but this engine was built without cuDNN (install cuDNN "
               "and rebuild with -DENGINE_CUDA=ON -DENGINE_CUDNN=ON, or use the native batch norm)");
  g_engine = e;
}

BatchNormEngine batch_norm_engine() { return g_engine; }

namespace {

// residual (defined only for batch_norm2d_add_relu): added to the normalised x before the ReLU.
Tensor batch_norm2d_impl(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                         Tensor& running_var, bool training, double momentum, double eps, bool relu,
                         const Tensor& residual, Layout layout) {
  const bool has_r = residual.defined();
  // batch_norm2d_relu reports its errors as batch_norm2d; the residual join names itself.
  const char* op = has_r ? "batch_norm2d_add_relu" : kOp;
  check_dim(op, dims_name("x", layout).c_str(), x, 4);
  check_storage(op, "x", x);
  check_same(op, {{"x", x}, {"residual", residual}});
  // Parameters and statistics are in the compute dtype (kernels/dtype.h): x's own for float and double, float32
  // beside bf16 activations (mixed precision).
  const std::vector<std::pair<const char*, Tensor>> params = {
      {"weight (gamma)", gamma}, {"bias (beta)", beta}, {"running_mean", running_mean}, {"running_var", running_var}};
  for (const auto& [name, t] : params)  // each against x, so all agree
    if (t.defined()) {
      ENGINE_CHECK(t.dtype() == compute_dtype(x.dtype()), op, ": ", name, " is ", dtype_name(t.dtype()), " but x is ",
                   dtype_name(x.dtype()), ", whose parameters and statistics are ",
                   dtype_name(compute_dtype(x.dtype())), "; convert with .to(DType)");
      ENGINE_CHECK(t.device() == x.device(), op, ": ", name, " is on ", t.device().str(), " but x is on ",
                   x.device().str(), "; move it with .to(Device)");
    }
  ENGINE_CHECK(!has_r || residual.shape() == x.shape(), op, ": residual has shape ", shape_str(residual.shape()),
               " but x has shape ", shape_str(x.shape()), "; they must match (no broadcasting)");
  const Dims4 d = dims4(x, layout);
  check_per_channel(op, "weight (gamma)", gamma, x, d.c);
  check_per_channel(op, "bias (beta)", beta, x, d.c);
  check_per_channel(op, "running_mean", running_mean, x, d.c);
  check_per_channel(op, "running_var", running_var, x, d.c);
  ENGINE_CHECK(running_mean.defined() == running_var.defined(), op,
               ": give both running_mean and running_var, or neither");
  ENGINE_CHECK(training || running_mean.defined(), op,
               ": eval mode (training = false) normalises with running_mean and running_var, but they are undefined");
  ENGINE_CHECK(x.numel() > 0, op, ": x of shape ", shape_str(x.shape()), " is empty");
  ENGINE_CHECK(eps >= 0, op, ": eps must be >= 0, got ", eps);
  const kernels::BatchNormShape s{d.n, d.c, d.h * d.w, layout};
  ENGINE_CHECK(!training || s.n * s.hw > 1, op,
               ": expected more than 1 value per channel when training, got x of shape ", shape_str(x.shape()),
               " (use eval mode or a larger batch)");

  // cuDNN only in training on CUDA; fixed here so that forward and backward of one call agree.
  // cuDNN is wired here for float and double, with parameters in the data's type, and for NCHW: bf16 and channels
  // last take the native kernels.
  const bool use_cudnn = g_engine == BatchNormEngine::cudnn && training && x.is_cuda() && x.dtype() != DType::bf16 &&
                         layout == Layout::nchw;
  // cuDNN's batch norm has no fused residual or activation here: compose with add() and relu().
  if (use_cudnn && (relu || has_r)) {
    Tensor y =
        batch_norm2d_impl(x, gamma, beta, running_mean, running_var, true, momentum, eps, false, Tensor(), layout);
    if (has_r) y = engine::add(y, residual);
    return relu ? engine::relu(y) : y;
  }
  Tensor g_arg = gamma, b_arg = beta;
  // Parameters and statistics are in the compute dtype (kernels/dtype.h), activations in x's storage dtype.
  const DType cdt = compute_dtype(x.dtype());
  if (use_cudnn && !gamma.defined()) g_arg = Tensor::full({s.c}, 1.0, cdt, x.device());  // cuDNN wants both
  if (use_cudnn && !beta.defined()) b_arg = Tensor::zeros({s.c}, cdt, x.device());

  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  // Saved for backward: batch statistics in training, the running statistics as they were in eval (the running
  // buffers may change before backward runs).
  Tensor save_mean = Tensor::empty({s.c}, cdt, x.device());
  Tensor save_invstd = Tensor::empty({s.c}, cdt, x.device());
  dispatch_storage(op, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using C = kernels::compute_t<T>;
    const T *px = x.data<T>(), *pr = ptr_or_null<T>(residual);
    T* py = y.data<T>();
    const C *pg = ptr_or_null<C>(g_arg), *pb = ptr_or_null<C>(b_arg);
    C *pm = save_mean.data<C>(), *pi = save_invstd.data<C>();
    C *rm = ptr_or_null<C>(running_mean), *rv = ptr_or_null<C>(running_var);
    if (use_cudnn) {
#if ENGINE_HAVE_CUDNN
      if constexpr (std::is_same_v<T, C>)  // float and double only (use_cudnn above)
        kernels::cudnn::batch_norm_forward_train<T>(px, pg, pb, py, pm, pi, rm, rv, s, momentum, eps);
#else
      fail("batch_norm2d: the cuDNN engine is selected, but this build has no cuDNN");
#endif
    } else if (training) {
      ENGINE_KERNEL(op, x, batch_norm_forward_train<T>, px, pg, pb, py, pm, pi, rm, rv, s, momentum, eps, relu, pr);
    } else {
      ENGINE_KERNEL(op, x, batch_norm_forward_eval<T>, px, pg, pb, rm, rv, py, pm, pi, s, eps, relu, pr);
    }
  });
  if (training && running_mean.defined()) {  // updated in place (Storage::version)
    running_mean.bump_version();
    running_var.bump_version();
  }

  // With a residual, backward masks with the saved output (y > 0, exactly the forward's ReLU; free, since the
  // next layer keeps y anyway) rather than recomputing bn(x) + r. Detached: the closure must not own y's node.
  const Tensor y_saved = has_r ? y.detach() : Tensor();
  std::vector<Tensor> inputs{x, gamma, beta};
  if (has_r) inputs.push_back(residual);
  const char* name = has_r ? op : relu ? "batch_norm2d_relu" : kOp;
  record(y, name, std::move(inputs),
         [x, g_arg, b_arg, save_mean, save_invstd, cdt, training, s, use_cudnn, eps, relu, y_saved](
             const Tensor& g, const std::vector<bool>& need) {
           const bool has_r = y_saved.defined();
           std::vector<Tensor> grads(has_r ? 4 : 3);
           if (need[0]) grads[0] = Tensor::empty(x.shape(), x.dtype(), x.device());
           if (need[1]) grads[1] = Tensor::empty({s.c}, cdt, x.device());
           if (need[2]) grads[2] = Tensor::empty({s.c}, cdt, x.device());
           // The residual's gradient is the masked gy, which BN's backward then reads: made even if not wanted.
           Tensor gr = has_r ? Tensor::empty(x.shape(), x.dtype(), x.device()) : Tensor();
           dispatch_storage("batch_norm2d backward", x.dtype(), [&](auto tag) {
             using T = decltype(tag);
             using C = kernels::compute_t<T>;
             const T *px = x.data<T>(), *pgy = g.data<T>();
             T* gx = ptr_or_null<T>(grads[0]);
             const C *pg = ptr_or_null<C>(g_arg), *pm = save_mean.data<C>(), *pi = save_invstd.data<C>();
             const C* pb = ptr_or_null<C>(b_arg);
             C *dgamma = ptr_or_null<C>(grads[1]), *dbeta = ptr_or_null<C>(grads[2]);
             const T* py = ptr_or_null<T>(y_saved);
             T* pgr = ptr_or_null<T>(gr);
             if (use_cudnn) {
#if ENGINE_HAVE_CUDNN
               if constexpr (std::is_same_v<T, C>)
                 kernels::cudnn::batch_norm_backward_train<T>(px, pgy, pg, pm, pi, gx, dgamma, dbeta, s, eps);
#else
               (void)eps;
               fail("batch_norm2d backward: the cuDNN engine was used, but this build has no cuDNN");
#endif
             } else
               ENGINE_KERNEL("batch_norm2d backward", x, batch_norm_backward<T>, px, pgy, pg, pm, pi, gx, dgamma, dbeta,
                             s, training, relu, pb, py, pgr);
           });
           if (has_r && need[3]) grads[3] = gr;
           return grads;
         });
  return y;
}

}  // namespace

Tensor batch_norm2d(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean, Tensor& running_var,
                    bool training, double momentum, double eps, Layout layout) {
  return batch_norm2d_impl(x, gamma, beta, running_mean, running_var, training, momentum, eps, false, Tensor(), layout);
}

Tensor batch_norm2d_relu(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                         Tensor& running_var, bool training, double momentum, double eps, Layout layout) {
  return batch_norm2d_impl(x, gamma, beta, running_mean, running_var, training, momentum, eps, true, Tensor(), layout);
}

Tensor batch_norm2d_add_relu(const Tensor& x, const Tensor& residual, const Tensor& gamma, const Tensor& beta,
                             Tensor& running_mean, Tensor& running_var, bool training, double momentum, double eps,
                             Layout layout) {
  check_defined("batch_norm2d_add_relu", "residual", residual);
  return batch_norm2d_impl(x, gamma, beta, running_mean, running_var, training, momentum, eps, true, residual, layout);
}

}  // namespace engine
