// linear front-end: y = x W^T + b as one GEMM (kernels/gemm.h); backward gx = gy W, gW = gy^T x, gb = column
// sums of gy.
#include "kernels/linear.h"

#include "engine/ops.h"
#include "engine/ops/common.h"
#include "kernels/gemm.h"

namespace engine {
namespace {

template <class T>
void gemm_on(const Tensor& like, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b,
             int64_t ldb, T* c, int64_t ldc) {
  ENGINE_KERNEL("linear", like, gemm<T>, ta, tb, m, n, k, kernels::compute_t<T>(1), a, lda, b, ldb,
                kernels::compute_t<T>(0), c, ldc);
}

}  // namespace

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_dim("linear", "input", x, 2);
  check_dim("linear", "weight", weight, 2);
  check_storage("linear", "input", x);
  check_same("linear", {{"input", x}, {"weight", weight}, {"bias", bias}});
  const int64_t rows = x.size(0), in = x.size(1), out = weight.size(0);
  ENGINE_CHECK(in == weight.size(1), "linear: input has ", in, " features but weight expects ", weight.size(1),
               " (input ", shape_str(x.shape()), ", weight ", shape_str(weight.shape()), ")");
  if (bias.defined()) {
    ENGINE_CHECK(bias.dim() == 1 && bias.size(0) == out, "linear: bias ", shape_str(bias.shape()),
                 " must have one element per output feature, [", out, "] (weight ", shape_str(weight.shape()), ")");
  }

  Tensor y = Tensor::empty({rows, out}, x.dtype(), x.device());
  dispatch_storage("linear", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    gemm_on<T>(x, false, true, rows, out, in, x.data<T>(), in, weight.data<T>(), in, y.data<T>(), out);
    if (bias.defined()) {
      ENGINE_KERNEL("linear", x, add_row_bias<T>, bias.data<T>(), y.data<T>(), rows, out);
    }
  });

  record(y, "linear", {x, weight, bias}, [x, weight](const Tensor& g, const std::vector<bool>& need) {
    const int64_t rows = x.size(0), in = x.size(1), out = weight.size(0);
    std::vector<Tensor> grads(3);
    dispatch_storage("linear backward", x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      if (need[0]) {
        grads[0] = Tensor::empty(x.shape(), x.dtype(), x.device());
        gemm_on<T>(x, false, false, rows, in, out, g.data<T>(), out, weight.data<T>(), in, grads[0].data<T>(), in);
      }
      if (need[1]) {
        grads[1] = Tensor::empty(weight.shape(), weight.dtype(), weight.device());
        gemm_on<T>(x, true, false, out, in, rows, g.data<T>(), out, x.data<T>(), in, grads[1].data<T>(), in);
      }
      if (need.size() > 2 && need[2]) {
        grads[2] = Tensor::empty({out}, x.dtype(), x.device());
        ENGINE_KERNEL("linear backward", x, sum_rows<T>, g.data<T>(), grads[2].data<T>(), rows, out);
      }
    });
    return grads;
  });
  return y;
}

}  // namespace engine
