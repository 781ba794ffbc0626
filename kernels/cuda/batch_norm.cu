// CUDA batch norm. Reductions run in two stages so that a few wide channels still fill the GPU:
//  1. partial_sums_kernel: grid (C, S); block (c, s) reduces one contiguous slice of channel c's m = N*H*W values
//     (as a flat index j = n*HW + i) to two double sums, written to a workspace;
//  2. finalize kernels: one thread per channel adds its S partials in a fixed order (deterministic) and derives
//     mean/invstd (forward) or sum_gy/sum_gy_xhat (backward).
// The element-wise passes (normalise, input gradient) use one block row per (n, c) plane.
// Forward statistics use shifted sums in double: d = x - K with K = x[n=0, c, 0], s1 = sum d, s2 = sum d^2,
// var = s2/m - (s1/m)^2, which merge by addition across blocks and lose little to cancellation because K is a
// sample of the channel.
#include <algorithm>

#include "kernels/batch_norm.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/runtime.h"

namespace kernels::cuda {
namespace {

constexpr int kReduceBlock = 256;  // multiple of 32: block_sum2 uses full-warp shuffles

// Block-wide sum of (a, b); the result is valid in thread 0. blockDim.x must be kReduceBlock. Called once per
// kernel, so the shared arrays need no second barrier before reuse.
__device__ void block_sum2(double& a, double& b) {
  __shared__ double sa[kReduceBlock / 32], sb[kReduceBlock / 32];
  for (int off = 16; off > 0; off >>= 1) {
    a += __shfl_down_sync(0xffffffffu, a, off);
    b += __shfl_down_sync(0xffffffffu, b, off);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    sa[warp] = a;
    sb[warp] = b;
  }
  __syncthreads();
  if (warp == 0) {
    a = lane < kReduceBlock / 32 ? sa[lane] : 0.0;
    b = lane < kReduceBlock / 32 ? sb[lane] : 0.0;
    for (int off = 16; off > 0; off >>= 1) {
      a += __shfl_down_sync(0xffffffffu, a, off);
      b += __shfl_down_sync(0xffffffffu, b, off);
    }
  }
}

// Stage 1. Forward: sums of d and d^2 with d = x - K. Backward: sums of gy and gy * xhat. Writes
// partial[(c * S + s) * 2 + {0, 1}], S = gridDim.y.
template <class T, bool kBackward>
__global__ void partial_sums_kernel(const T* __restrict__ x, const T* __restrict__ gy, const T* __restrict__ mean,
                                    const T* __restrict__ invstd, BatchNormShape s, int64_t chunk,
                                    double* __restrict__ partial) {
  const int64_t c = blockIdx.x;
  const int64_t m = s.n * s.hw;
  const int64_t j0 = blockIdx.y * chunk;
  const int64_t j1 = j0 + chunk < m ? j0 + chunk : m;
  double shift, scale;
  if constexpr (kBackward) {
    shift = double(mean[c]);
    scale = double(invstd[c]);
  } else {
    shift = double(x[c * s.hw]);
    scale = 1.0;
  }
  double a = 0, b = 0;
  // Walk j = j0 + threadIdx.x, j0 + threadIdx.x + blockDim.x, ... keeping (n, i) = (j / HW, j % HW) by
  // increments instead of a 64-bit division per element.
  int64_t j = j0 + threadIdx.x;
  int64_t n = j / s.hw, i = j % s.hw;
  const int64_t step_n = blockDim.x / s.hw, step_i = blockDim.x % s.hw;
  for (; j < j1; j += blockDim.x) {
    const int64_t k = (n * s.c + c) * s.hw + i;
    const double d = double(x[k]) - shift;
    if constexpr (kBackward) {
      const double g = double(gy[k]);
      a += g;
      b += g * d * scale;
    } else {
      a += d;
      b += d * d;
    }
    i += step_i;
    n += step_n;
    if (i >= s.hw) {
      i -= s.hw;
      ++n;
    }
  }
  block_sum2(a, b);
  if (threadIdx.x == 0) {
    const int64_t slot = (c * gridDim.y + blockIdx.y) * 2;
    partial[slot] = a;
    partial[slot + 1] = b;
  }
}

// Stage 2 (forward, training): mean, invstd, running-stat update.
template <class T>
__global__ void finalize_train_kernel(const T* __restrict__ x, const double* __restrict__ partial, int S,
                                      BatchNormShape s, double momentum, double eps, T* save_mean, T* save_invstd,
                                      T* running_mean, T* running_var) {
  CUDA_KERNEL_LOOP(c, s.c) {
    double s1 = 0, s2 = 0;
    for (int k = 0; k < S; ++k) {
      s1 += partial[(c * S + k) * 2];
      s2 += partial[(c * S + k) * 2 + 1];
    }
    const double m = double(s.n * s.hw);
    const double dm = s1 / m;
    const double var = fmax(s2 / m - dm * dm, 0.0);  // biased
    const double mean = double(x[c * s.hw]) + dm;
    save_mean[c] = T(mean);
    save_invstd[c] = T(1.0 / sqrt(var + eps));
    if (running_mean) running_mean[c] = T((1 - momentum) * double(running_mean[c]) + momentum * mean);
    if (running_var) running_var[c] = T((1 - momentum) * double(running_var[c]) + momentum * var * m / (m - 1));
  }
}

template <class T>
__global__ void finalize_eval_kernel(const T* running_mean, const T* running_var, int64_t C, double eps, T* save_mean,
                                     T* save_invstd) {
  CUDA_KERNEL_LOOP(c, C) {
    save_mean[c] = running_mean[c];
    save_invstd[c] = T(1.0 / sqrt(double(running_var[c]) + eps));
  }
}

// Stage 2 (backward): sums[2c] = sum_gy, sums[2c + 1] = sum_gy_xhat; dbeta / dgamma when asked.
template <class T>
__global__ void finalize_backward_kernel(const double* __restrict__ partial, int S, int64_t C, double* sums, T* dgamma,
                                         T* dbeta) {
  CUDA_KERNEL_LOOP(c, C) {
    double s1 = 0, s2 = 0;
    for (int k = 0; k < S; ++k) {
      s1 += partial[(c * S + k) * 2];
      s2 += partial[(c * S + k) * 2 + 1];
    }
    sums[2 * c] = s1;
    sums[2 * c + 1] = s2;
    if (dbeta) dbeta[c] = T(s1);
    if (dgamma) dgamma[c] = T(s2);
  }
}

// Element-wise passes: block x walks the (n, c) planes, block y and the threads walk H*W within a plane.
template <class T>
__global__ void normalise_kernel(const T* __restrict__ x, const T* __restrict__ gamma, const T* __restrict__ beta,
                                 const T* __restrict__ mean, const T* __restrict__ invstd, T* __restrict__ y,
                                 int64_t planes, int64_t C, int64_t hw) {
  for (int64_t p = blockIdx.x; p < planes; p += gridDim.x) {
    const int64_t c = p % C;
    const T mu = mean[c];
    const T scale = gamma ? gamma[c] * invstd[c] : invstd[c];
    const T shift = beta ? beta[c] : T(0);
    const T* xp = x + p * hw;
    T* yp = y + p * hw;
    for (int64_t i = blockIdx.y * (int64_t)blockDim.x + threadIdx.x; i < hw; i += (int64_t)gridDim.y * blockDim.x)
      yp[i] = (xp[i] - mu) * scale + shift;
  }
}

// gx = k * (gy - sum_gy/m - xhat * sum_gy_xhat/m) with k = gamma * invstd (training; sums != null), or
// gx = k * gy (eval; sums == null).
template <class T>
__global__ void input_grad_kernel(const T* __restrict__ x, const T* __restrict__ gy, const T* __restrict__ gamma,
                                  const T* __restrict__ mean, const T* __restrict__ invstd,
                                  const double* __restrict__ sums, T* __restrict__ gx, int64_t planes, int64_t C,
                                  int64_t hw, double inv_m) {
  for (int64_t p = blockIdx.x; p < planes; p += gridDim.x) {
    const int64_t c = p % C;
    const double is = double(invstd[c]);
    const T k = T((gamma ? double(gamma[c]) : 1.0) * is);
    const T mu = mean[c];
    const T mean_gy = sums ? T(sums[2 * c] * inv_m) : T(0);
    const T xhat_coef = sums ? T(sums[2 * c + 1] * inv_m * is) : T(0);  // multiplies (x - mean)
    const T* xp = x + p * hw;
    const T* gp = gy + p * hw;
    T* op = gx + p * hw;
    for (int64_t i = blockIdx.y * (int64_t)blockDim.x + threadIdx.x; i < hw; i += (int64_t)gridDim.y * blockDim.x)
      op[i] = k * (gp[i] - mean_gy - (xp[i] - mu) * xhat_coef);
  }
}

// A device scratch buffer from the caching allocator. Freed at scope exit: the engine runs on one stream, so a
// later owner of the block is ordered after the kernels queued here.
struct Scratch {
  explicit Scratch(std::size_t bytes) : p(alloc(bytes)) {}
  ~Scratch() { kernels::cuda::free(p); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  double* d() const { return static_cast<double*>(p); }
  void* p;
};

// Slices per channel for stage 1: at least 16 values per thread, and about 1024 blocks in all at most.
void split(const BatchNormShape& s, int* S, int64_t* chunk) {
  const int64_t m = s.n * s.hw;
  const int64_t want = std::max<int64_t>(1, (m + 16 * kReduceBlock - 1) / (16 * kReduceBlock));
  const int64_t cap = std::max<int64_t>(1, (1024 + s.c - 1) / s.c);
  const int64_t slices = std::min(want, cap);
  *chunk = (m + slices - 1) / slices;
  *S = static_cast<int>((m + *chunk - 1) / *chunk);
}

// Launch shape of the element-wise passes: a block of at most 256 threads (fewer for small planes).
void plane_launch(const BatchNormShape& s, dim3* grid, dim3* block) {
  const int64_t threads = std::min<int64_t>(256, (s.hw + 31) / 32 * 32);
  const int64_t planes = s.n * s.c;
  const int64_t per_plane = (s.hw + threads - 1) / threads;
  *block = dim3(static_cast<unsigned>(threads));
  *grid = dim3(static_cast<unsigned>(std::min<int64_t>(planes, 1 << 30)),
               static_cast<unsigned>(std::min<int64_t>(per_plane, 65535)));
}

template <class T, bool kBackward>
void launch_partial_sums(const T* x, const T* gy, const T* mean, const T* invstd, const BatchNormShape& s, int S,
                         int64_t chunk, double* partial) {
  partial_sums_kernel<T, kBackward>
      <<<dim3(static_cast<unsigned>(s.c), static_cast<unsigned>(S)), kReduceBlock, 0, stream()>>>(x, gy, mean, invstd,
                                                                                                  s, chunk, partial);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

template <class T>
void batch_norm_forward_train(const T* x, const T* gamma, const T* beta, T* y, T* save_mean, T* save_invstd,
                              T* running_mean, T* running_var, const BatchNormShape& s, double momentum, double eps) {
  if (s.n * s.c * s.hw == 0) return;
  int S;
  int64_t chunk;
  split(s, &S, &chunk);
  Scratch partial(sizeof(double) * 2 * s.c * S);
  launch_partial_sums<T, false>(x, nullptr, nullptr, nullptr, s, S, chunk, partial.d());
  finalize_train_kernel<T><<<grid_for(s.c, 256), 256, 0, stream()>>>(x, partial.d(), S, s, momentum, eps, save_mean,
                                                                     save_invstd, running_mean, running_var);
  CUDA_CHECK_LAUNCH();
  dim3 grid, block;
  plane_launch(s, &grid, &block);
  normalise_kernel<T><<<grid, block, 0, stream()>>>(x, gamma, beta, save_mean, save_invstd, y, s.n * s.c, s.c, s.hw);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void batch_norm_forward_eval(const T* x, const T* gamma, const T* beta, const T* running_mean, const T* running_var,
                             T* y, T* save_mean, T* save_invstd, const BatchNormShape& s, double eps) {
  if (s.c == 0) return;
  finalize_eval_kernel<T>
      <<<grid_for(s.c, 256), 256, 0, stream()>>>(running_mean, running_var, s.c, eps, save_mean, save_invstd);
  CUDA_CHECK_LAUNCH();
  if (s.n * s.hw == 0) return;
  dim3 grid, block;
  plane_launch(s, &grid, &block);
  normalise_kernel<T><<<grid, block, 0, stream()>>>(x, gamma, beta, save_mean, save_invstd, y, s.n * s.c, s.c, s.hw);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void batch_norm_backward(const T* x, const T* gy, const T* gamma, const T* save_mean, const T* save_invstd, T* gx,
                         T* dgamma, T* dbeta, const BatchNormShape& s, bool training) {
  if (s.n * s.c * s.hw == 0) return;
  const bool need_sums = dgamma || dbeta || (gx && training);
  double* sums = nullptr;
  int S = 1;
  int64_t chunk = 0;
  if (need_sums) split(s, &S, &chunk);
  // One buffer: S partial pairs per channel, then the final pair per channel.
  Scratch scratch(need_sums ? sizeof(double) * 2 * s.c * (S + 1) : 0);
  if (need_sums) {
    double* partial = scratch.d();
    sums = partial + 2 * s.c * S;
    launch_partial_sums<T, true>(x, gy, save_mean, save_invstd, s, S, chunk, partial);
    finalize_backward_kernel<T><<<grid_for(s.c, 256), 256, 0, stream()>>>(partial, S, s.c, sums, dgamma, dbeta);
    CUDA_CHECK_LAUNCH();
  }
  if (!gx) return;
  dim3 grid, block;
  plane_launch(s, &grid, &block);
  input_grad_kernel<T><<<grid, block, 0, stream()>>>(x, gy, gamma, save_mean, save_invstd, training ? sums : nullptr,
                                                     gx, s.n * s.c, s.c, s.hw, 1.0 / double(s.n * s.hw));
  CUDA_CHECK_LAUNCH();
}

#define INSTANTIATE(T)                                                                                               \
  template void batch_norm_forward_train<T>(const T*, const T*, const T*, T*, T*, T*, T*, T*, const BatchNormShape&, \
                                            double, double);                                                         \
  template void batch_norm_forward_eval<T>(const T*, const T*, const T*, const T*, const T*, T*, T*, T*,             \
                                           const BatchNormShape&, double);                                           \
  template void batch_norm_backward<T>(const T*, const T*, const T*, const T*, const T*, T*, T*, T*,                 \
                                       const BatchNormShape&, bool);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE

}  // namespace kernels::cuda
