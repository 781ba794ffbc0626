#include "engine/ops.h"

#include "engine/ops/common.h"
#include "kernels/batch_norm.h"

namespace engine {
namespace {

constexpr const char* kOp = "batch_norm2d";
BatchNormEngine g_engine = BatchNormEngine::native;

template <class T>
T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

void check_per_channel(const char* what, const Tensor& t, const Tensor& x) {
  if (!t.defined()) return;
  ENGINE_CHECK(t.shape() == Shape{x.size(1)}, kOp, ": ", what, " has shape ", shape_str(t.shape()), " but x ",
               shape_str(x.shape()), " has ", x.size(1), " channels; expected [", x.size(1), "]");
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

Tensor batch_norm2d_impl(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                         Tensor& running_var, bool training, double momentum, double eps, bool relu) {
  check_dim(kOp, "x (N, C, H, W)", x, 4);
  check_computable(kOp, "x", x);
  check_same(kOp, {{"x", x},
                   {"weight (gamma)", gamma},
                   {"bias (beta)", beta},
                   {"running_mean", running_mean},
                   {"running_var", running_var}});
  check_per_channel("weight (gamma)", gamma, x);
  check_per_channel("bias (beta)", beta, x);
  check_per_channel("running_mean", running_mean, x);
  check_per_channel("running_var", running_var, x);
  ENGINE_CHECK(running_mean.defined() == running_var.defined(), kOp,
               ": give both running_mean and running_var, or neither");
  ENGINE_CHECK(training || running_mean.defined(), kOp,
               ": eval mode (training = false) normalises with running_mean and running_var, but they are undefined");
  ENGINE_CHECK(x.numel() > 0, kOp, ": x of shape ", shape_str(x.shape()), " is empty");
  ENGINE_CHECK(eps >= 0, kOp, ": eps must be >= 0, got ", eps);
  const kernels::BatchNormShape s{x.size(0), x.size(1), x.size(2) * x.size(3)};
  ENGINE_CHECK(!training || s.n * s.hw > 1, kOp,
               ": expected more than 1 value per channel when training, got x of shape ", shape_str(x.shape()),
               " (use eval mode or a larger batch)");

  // cuDNN only in training on CUDA; fixed here so that forward and backward of one call agree.
  const bool use_cudnn = g_engine == BatchNormEngine::cudnn && training && x.is_cuda();
  // cuDNN's batch norm has no fused activation here: compose with relu().
  if (use_cudnn && relu)
    return engine::relu(batch_norm2d_impl(x, gamma, beta, running_mean, running_var, true, momentum, eps, false));
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
  dispatch_compute(kOp, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    using C = kernels::compute_t<T>;
    const T* px = x.data<T>();
    T* py = y.data<T>();
    const C *pg = ptr_or_null<C>(g_arg), *pb = ptr_or_null<C>(b_arg);
    C *pm = save_mean.data<C>(), *pi = save_invstd.data<C>();
    C *rm = ptr_or_null<C>(running_mean), *rv = ptr_or_null<C>(running_var);
    if (use_cudnn) {
#if ENGINE_HAVE_CUDNN
      kernels::cudnn::batch_norm_forward_train<T>(px, pg, pb, py, pm, pi, rm, rv, s, momentum, eps);
#else
      fail("batch_norm2d: the cuDNN engine is selected, but this build has no cuDNN");
#endif
    } else if (training) {
      ENGINE_KERNEL(kOp, x, batch_norm_forward_train<T>, px, pg, pb, py, pm, pi, rm, rv, s, momentum, eps, relu);
    } else {
      ENGINE_KERNEL(kOp, x, batch_norm_forward_eval<T>, px, pg, pb, rm, rv, py, pm, pi, s, eps, relu);
    }
  });

  record(y, relu ? "batch_norm2d_relu" : kOp, {x, gamma, beta},
         [x, g_arg, b_arg, save_mean, save_invstd, cdt, training, s, use_cudnn, eps, relu](
             const Tensor& g, const std::vector<bool>& need) {
           std::vector<Tensor> grads(3);
           if (need[0]) grads[0] = Tensor::empty(x.shape(), x.dtype(), x.device());
           if (need[1]) grads[1] = Tensor::empty({s.c}, cdt, x.device());
           if (need[2]) grads[2] = Tensor::empty({s.c}, cdt, x.device());
           dispatch_compute("batch_norm2d backward", x.dtype(), [&](auto tag) {
             using T = decltype(tag);
             using C = kernels::compute_t<T>;
             const T *px = x.data<T>(), *pgy = g.data<T>();
             T* gx = ptr_or_null<T>(grads[0]);
             const C *pg = ptr_or_null<C>(g_arg), *pm = save_mean.data<C>(), *pi = save_invstd.data<C>();
             const C* pb = ptr_or_null<C>(b_arg);
             C *dgamma = ptr_or_null<C>(grads[1]), *dbeta = ptr_or_null<C>(grads[2]);
             if (use_cudnn) {
#if ENGINE_HAVE_CUDNN
               kernels::cudnn::batch_norm_backward_train<T>(px, pgy, pg, pm, pi, gx, dgamma, dbeta, s, eps);
#else
               (void)eps;
               fail("batch_norm2d backward: the cuDNN engine was used, but this build has no cuDNN");
#endif
             } else
               ENGINE_KERNEL("batch_norm2d backward", x, batch_norm_backward<T>, px, pgy, pg, pm, pi, gx, dgamma, dbeta,
                             s, training, relu, pb);
           });
           return grads;
         });
  return y;
}

}  // namespace

Tensor batch_norm2d(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean, Tensor& running_var,
                    bool training, double momentum, double eps) {
  return batch_norm2d_impl(x, gamma, beta, running_mean, running_var, training, momentum, eps, false);
}

Tensor batch_norm2d_relu(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                         Tensor& running_var, bool training, double momentum, double eps) {
  return batch_norm2d_impl(x, gamma, beta, running_mean, running_var, training, momentum, eps, true);
}

}  // namespace engine
