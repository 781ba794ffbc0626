// Batch norm, training mode, through cuDNN's spatial batch normalisation: an optional engine beside
// kernels/cuda/batch_norm.cu, chosen with engine::set_batch_norm_engine. Descriptors are built per call (a handful
// of host calls, no device work). Outputs that the caller does not want, and absent running stats, go to scratch
// from the caching allocator, because cuDNN writes them all.
#include "kernels/batch_norm.h"

#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/runtime.h"
#include "kernels/cudnn/common.h"

namespace kernels::cudnn {
namespace {

// x/y descriptor [N, C, H*W, 1] and the derived per-channel descriptor [1, C, 1, 1] (double for double data,
// float for float), destroyed with the object.
struct Descriptors {
  cudnnTensorDescriptor_t x = nullptr, param = nullptr;
  Descriptors(const BatchNormShape& s, cudnnDataType_t dt) {
    KERNELS_CHECK(s.layout == Layout::nchw,
                  "batch_norm2d (cuDNN): NHWC is not supported by the cuDNN engine; use the native kernels "
                  "(kernels::cuda::batch_norm_*), which have NHWC");
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&param));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, dt, int(s.n), int(s.c), int(s.hw), 1));
    CUDNN_CHECK(cudnnDeriveBNTensorDescriptor(param, x, CUDNN_BATCHNORM_SPATIAL));
  }
  ~Descriptors() {
    cudnnDestroyTensorDescriptor(x);
    cudnnDestroyTensorDescriptor(param);
  }
  Descriptors(const Descriptors&) = delete;
  Descriptors& operator=(const Descriptors&) = delete;
};

// `p`, or a scratch buffer of `count` elements when p is null.
template <class T>
T* or_scratch(T* p, kernels::cuda::DeviceBuffer<T>& scratch, int64_t count) {
  if (p) return p;
  scratch.reset(static_cast<std::size_t>(count));
  return scratch.get();
}

}  // namespace

template <class T>
void batch_norm_forward_train(const T* x, const T* gamma, const T* beta, T* y, T* save_mean, T* save_invstd,
                              T* running_mean, T* running_var, const BatchNormShape& s, double momentum, double eps) {
  if (s.n * s.c * s.hw == 0) return;
  KERNELS_CHECK(eps >= CUDNN_BN_MIN_EPSILON, "batch_norm2d (cuDNN): eps ", eps, " is below CUDNN_BN_MIN_EPSILON (",
                CUDNN_BN_MIN_EPSILON, "); use the native engine");
  Descriptors d(s, data_type<T>());
  kernels::cuda::DeviceBuffer<T> scratch_mean, scratch_var;
  T* rm = or_scratch(running_mean, scratch_mean, s.c);
  T* rv = or_scratch(running_var, scratch_var, s.c);
  const T one = 1, zero = 0;  // scaling factors have the data's type (double for double, float for float)
  CUDNN_CHECK(cudnnBatchNormalizationForwardTraining(handle(), CUDNN_BATCHNORM_SPATIAL, &one, &zero, d.x, x, d.x, y,
                                                     d.param, gamma, beta, momentum, rm, rv, eps, save_mean,
                                                     save_invstd));
}

template <class T>
void batch_norm_backward_train(const T* x, const T* gy, const T* gamma, const T* save_mean, const T* save_invstd, T* gx,
                               T* dgamma, T* dbeta, const BatchNormShape& s, double eps) {
  if (s.n * s.c * s.hw == 0) return;
  Descriptors d(s, data_type<T>());
  kernels::cuda::DeviceBuffer<T> scratch_gx, scratch_dgamma, scratch_dbeta;
  T* pgx = or_scratch(gx, scratch_gx, s.n * s.c * s.hw);
  T* pdg = or_scratch(dgamma, scratch_dgamma, s.c);
  T* pdb = or_scratch(dbeta, scratch_dbeta, s.c);
  const T one = 1, zero = 0;
  CUDNN_CHECK(cudnnBatchNormalizationBackward(handle(), CUDNN_BATCHNORM_SPATIAL, &one, &zero, &one, &zero, d.x, x, d.x,
                                              gy, d.x, pgx, d.param, gamma, pdg, pdb, eps, save_mean, save_invstd));
}

#define INSTANTIATE(T)                                                                                               \
  template void batch_norm_forward_train<T>(const T*, const T*, const T*, T*, T*, T*, T*, T*, const BatchNormShape&, \
                                            double, double);                                                         \
  template void batch_norm_backward_train<T>(const T*, const T*, const T*, const T*, const T*, T*, T*, T*,           \
                                             const BatchNormShape&, double);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE

}  // namespace kernels::cudnn
