#include "kernels/cuda/vectorized.cuh"
#include "kernels/elementwise.h"

namespace kernels::cuda {
namespace {
constexpr int kBlock = 256;
template <class T>
__global__ void fill_kernel(T* y, T v, int64_t n) {
  CUDA_KERNEL_LOOP(i, n) y[i] = v;
}
template <class S, class D>
__global__ void convert_kernel(const S* x, D* y, int64_t n) {
  CUDA_KERNEL_LOOP(i, n) y[i] = convert_value<D>(x[i]);
}
struct Add {
  template <class T>
  __device__ T operator()(T a, T b) const {
    return to_storage<T>(to_compute(a) + to_compute(b));
  }
};
template <class T>
struct Scale {
  compute_t<T> alpha;
  __device__ T operator()(T x) const { return to_storage<T>(alpha * to_compute(x)); }
};
}  // namespace

template <class T>
void fill(T* y, T value, int64_t n) {
  if (n == 0) return;
  fill_kernel<<<grid_for(n, kBlock), kBlock, 0, stream()>>>(y, value, n);
  CUDA_CHECK_LAUNCH();
}
template <class S, class D>
void convert(const S* x, D* y, int64_t n) {
  if (n == 0) return;
  convert_kernel<<<grid_for(n, kBlock), kBlock, 0, stream()>>>(x, y, n);
  CUDA_CHECK_LAUNCH();
}
template <class T>
void add(const T* a, const T* b, T* y, int64_t n) {
  map2(Add{}, a, b, y, n);
}
template <class T>
void scale(const T* x, compute_t<T> alpha, T* y, int64_t n) {
  map1(Scale<T>{alpha}, x, y, n);
}

KERNELS_ELEMENTWISE_INSTANTIATIONS

}  // namespace kernels::cuda
