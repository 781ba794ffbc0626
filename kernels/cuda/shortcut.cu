// CUDA option-A shortcut: one thread per element in both directions (gathers), in either layout.
#include "kernels/cuda/common.cuh"
#include "kernels/shortcut.h"

namespace kernels::cuda {
namespace {
constexpr int kBlock = 256;

// One thread per output element; consecutive threads write consecutive w, so stores coalesce.
template <class T>
__global__ void shortcut_a_forward_kernel(const T* x, T* y, ShortcutAParams p, int64_t total) {
  CUDA_KERNEL_LOOP(idx, total) {
    int64_t j = idx % p.w_out, t = idx / p.w_out;
    int64_t i = t % p.h_out;
    t /= p.h_out;
    int64_t c = t % p.c_out - p.pad_front, n = t / p.c_out;
    y[idx] = (c < 0 || c >= p.c_in) ? to_storage<T>(0)
                                    : x[((n * p.c_in + c) * p.h_in + i * p.stride) * p.w_in + j * p.stride];
  }
}

// One thread per input element: a gather from gy, zero where the pixel was skipped.
template <class T>
__global__ void shortcut_a_backward_kernel(const T* gy, T* gx, ShortcutAParams p, int64_t total) {
  CUDA_KERNEL_LOOP(idx, total) {
    int64_t w = idx % p.w_in, t = idx / p.w_in;
    int64_t h = t % p.h_in;
    t /= p.h_in;
    int64_t c = t % p.c_in + p.pad_front, n = t / p.c_in;
    gx[idx] = (h % p.stride == 0 && w % p.stride == 0)
                  ? gy[((n * p.c_out + c) * p.h_out + h / p.stride) * p.w_out + w / p.stride]
                  : to_storage<T>(0);
  }
}

// NHWC: the same one thread per element, the channel fastest, so both the gather and the store coalesce along C.
template <class T>
__global__ void shortcut_a_forward_nhwc_kernel(const T* x, T* y, ShortcutAParams p, int64_t total) {
  CUDA_KERNEL_LOOP(idx, total) {
    const int64_t c = idx % p.c_out - p.pad_front;
    int64_t t = idx / p.c_out;
    const int64_t j = t % p.w_out;
    t /= p.w_out;
    const int64_t i = t % p.h_out, n = t / p.h_out;
    y[idx] = (c < 0 || c >= p.c_in) ? to_storage<T>(0)
                                    : x[((n * p.h_in + i * p.stride) * p.w_in + j * p.stride) * p.c_in + c];
  }
}

template <class T>
__global__ void shortcut_a_backward_nhwc_kernel(const T* gy, T* gx, ShortcutAParams p, int64_t total) {
  CUDA_KERNEL_LOOP(idx, total) {
    const int64_t c = idx % p.c_in + p.pad_front;
    int64_t t = idx / p.c_in;
    const int64_t w = t % p.w_in;
    t /= p.w_in;
    const int64_t h = t % p.h_in, n = t / p.h_in;
    gx[idx] = (h % p.stride == 0 && w % p.stride == 0)
                  ? gy[((n * p.h_out + h / p.stride) * p.w_out + w / p.stride) * p.c_out + c]
                  : to_storage<T>(0);
  }
}
}  // namespace

template <class T>
void shortcut_a_forward(const T* x, T* y, const ShortcutAParams& p) {
  const int64_t total = p.n * p.c_out * p.h_out * p.w_out;
  if (total == 0) return;
  if (p.layout == Layout::nhwc)
    shortcut_a_forward_nhwc_kernel<<<grid_for(total, kBlock), kBlock, 0, stream()>>>(x, y, p, total);
  else
    shortcut_a_forward_kernel<<<grid_for(total, kBlock), kBlock, 0, stream()>>>(x, y, p, total);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void shortcut_a_backward(const T* gy, T* gx, const ShortcutAParams& p) {
  const int64_t total = p.n * p.c_in * p.h_in * p.w_in;
  if (total == 0) return;
  if (p.layout == Layout::nhwc)
    shortcut_a_backward_nhwc_kernel<<<grid_for(total, kBlock), kBlock, 0, stream()>>>(gy, gx, p, total);
  else
    shortcut_a_backward_kernel<<<grid_for(total, kBlock), kBlock, 0, stream()>>>(gy, gx, p, total);
  CUDA_CHECK_LAUNCH();
}

KERNELS_SHORTCUT_INSTANTIATIONS

}  // namespace kernels::cuda
