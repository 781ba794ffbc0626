// CUDA batch norm. Reductions run in two stages so that a few wide channels still fill the GPU:
//  1. partial_sums_kernel: grid (C, S); block (c, s) reduces one contiguous slice of channel c's m = N*H*W values
//     (as a flat index j = n*HW + i) to two double sums, written to a workspace;
//  2. finalize kernels: one thread per channel adds its S partials in a fixed order (deterministic) and derives
//     mean/invstd (forward) or sum_gy/sum_gy_xhat (backward).
// The element-wise passes (normalise, input gradient) walk the flat NCHW index in 16-byte packs (see
// vectorized.cuh) and find each pack's channel by one division, so small planes (3x3 in ResNet-50's last stage)
// fill the GPU as well as large ones (one block per (n, c) plane ran 32-thread blocks there: docs/benchmarks.md).
// Forward statistics use shifted sums in double: d = x - K with K = x[n=0, c, 0], s1 = sum d, s2 = sum d^2,
// var = s2/m - (s1/m)^2, which merge by addition across blocks and lose little to cancellation because K is a
// sample of the channel.
// NHWC (channels last, x [N*H*W rows, C]): stage 1 is partial_sums_nhwc_kernel, grid (ceil(C / 32), S): block
// (t, s) takes the 32 channels of tile t (threadIdx.x, so a warp reads 32 contiguous values of a row: coalesced)
// over slice s of the rows, 8 rows at a time (threadIdx.y), and adds its 8 row-partials per channel in shared
// memory in a fixed order; it writes the same partial[(c * S + s) * 2 + {0, 1}] as the NCHW kernel, so stage 2 is
// shared. K is x[n=0, h=w=0, c] (BatchNormShape::index). The element-wise passes find a channel as e % C.
#include <algorithm>

#include "kernels/batch_norm.h"
#include "kernels/check.h"
#include "kernels/cuda/runtime.h"
#include "kernels/cuda/vectorized.cuh"

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

// The forward's per-channel affine map y = (x - mean) * (gamma * invstd) + beta, written once with explicit FMAs
// so that the fused-ReLU backward recomputes exactly the y the forward produced (its mask is y > 0).
__device__ inline float fma_rn(float a, float b, float c) { return __fmaf_rn(a, b, c); }
__device__ inline double fma_rn(double a, double b, double c) { return __fma_rn(a, b, c); }

// In the compute type C = compute_t<T>, from storage x.
template <class T>
struct Affine {
  using C = compute_t<T>;
  C mu, scale, shift;
  __device__ C operator()(T x) const { return fma_rn(to_compute(x) - mu, scale, shift); }
};

template <class T>
struct AffineParams {
  const compute_t<T>*gamma, *beta, *mean, *invstd;
  template <class I>
  __device__ Affine<T> at(I c) const {
    return {mean[c], gamma ? gamma[c] * invstd[c] : invstd[c], beta ? beta[c] : compute_t<T>(0)};
  }
};

// The terms stage 1 sums for channel c, in either layout. Forward: d and d^2 with d = x - K. Backward: gy and
// gy * xhat, gy counted only where affine(x) > 0 with kRelu.
template <class T, bool kBackward, bool kRelu>
struct StatTerms {
  double shift, scale;
  Affine<T> affine{};
  __device__ StatTerms(const T* x, const AffineParams<T>& ap, const BatchNormShape& s, int64_t c) {
    if constexpr (kRelu) affine = ap.at(c);
    if constexpr (kBackward) {
      shift = double(ap.mean[c]);
      scale = double(ap.invstd[c]);
    } else {
      shift = convert_value<double>(x[s.index(0, c, 0)]);  // K = the channel's first value
      scale = 1.0;
    }
  }
  // xv = x, gv = gy at one element (gv is not read in the forward).
  __device__ void add(T xv, T gv, double& a, double& b) const {
    if constexpr (kBackward) {
      const double g = !kRelu || affine(xv) > compute_t<T>(0) ? convert_value<double>(gv) : 0.0;
      a += g;
      b += g * (convert_value<double>(xv) - shift) * scale;
    } else {
      const double d = convert_value<double>(xv) - shift;
      a += d;
      b += d * d;
    }
  }
};

// Stage 1. Forward: sums of d and d^2 with d = x - K. Backward: sums of gy and gy * xhat. Writes
// partial[(c * S + s) * 2 + {0, 1}], S = gridDim.y. Block (c, s) covers packs [q0, q1) of channel c, where pack q
// holds elements V*q .. V*q + V - 1 of the channel's m = N*HW values (V divides HW, so a pack never spans two
// images). kRelu (backward only): the forward applied ReLU, so gy counts only where y = affine(x) > 0.
template <class T, int V, bool kBackward, bool kRelu>
__global__ void partial_sums_kernel(const T* __restrict__ x, const T* __restrict__ gy, AffineParams<T> ap,
                                    BatchNormShape s, int64_t chunk, double* __restrict__ partial) {
  using P = Pack<T, V>;
  const int64_t c = blockIdx.x;
  const int64_t hwv = s.hw / V, mv = s.n * hwv;
  const int64_t q0 = blockIdx.y * chunk;
  const int64_t q1 = q0 + chunk < mv ? q0 + chunk : mv;
  const StatTerms<T, kBackward, kRelu> terms(x, ap, s, c);
  double a = 0, b = 0;
  // Walk q = q0 + threadIdx.x, + blockDim.x, ... keeping (n, i) = (q / hwv, q % hwv) by increments instead of a
  // 64-bit division per pack.
  int64_t q = q0 + threadIdx.x;
  int64_t n = q / hwv, i = q % hwv;
  const int64_t step_n = blockDim.x / hwv, step_i = blockDim.x % hwv;
  for (; q < q1; q += blockDim.x) {
    const int64_t k = ((n * s.c + c) * s.hw) / V + i;  // pack index in the whole tensor
    const P px = reinterpret_cast<const P*>(x)[k];
    P pg{};
    if constexpr (kBackward) pg = reinterpret_cast<const P*>(gy)[k];
#pragma unroll
    for (int e = 0; e < V; ++e) terms.add(px.v[e], pg.v[e], a, b);
    i += step_i;
    n += step_n;
    if (i >= hwv) {
      i -= hwv;
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

// Stage 1 in NHWC: block (t, s) reduces channels [32 t, 32 t + 32) over rows [s * chunk, (s + 1) * chunk), the same
// sums as partial_sums_kernel, into the same partial layout.
constexpr int kTileC = 32, kTileRows = kReduceBlock / kTileC;

template <class T, bool kBackward, bool kRelu>
__global__ void partial_sums_nhwc_kernel(const T* __restrict__ x, const T* __restrict__ gy, AffineParams<T> ap,
                                         BatchNormShape s, int64_t chunk, double* __restrict__ partial) {
  __shared__ double sa[kTileRows][kTileC], sb[kTileRows][kTileC];
  const int64_t c = int64_t(blockIdx.x) * kTileC + threadIdx.x;
  const int64_t rows = s.n * s.hw, r0 = int64_t(blockIdx.y) * chunk;
  const int64_t r1 = r0 + chunk < rows ? r0 + chunk : rows;
  double a = 0, b = 0;
  if (c < s.c) {
    const StatTerms<T, kBackward, kRelu> terms(x, ap, s, c);
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kTileRows) {
      const int64_t e = r * s.c + c;
      terms.add(x[e], kBackward ? gy[e] : x[e], a, b);
    }
  }
  sa[threadIdx.y][threadIdx.x] = a;
  sb[threadIdx.y][threadIdx.x] = b;
  __syncthreads();
  if (threadIdx.y == 0 && c < s.c) {
    for (int k = 1; k < kTileRows; ++k) {  // a fixed order: deterministic
      a += sa[k][threadIdx.x];
      b += sb[k][threadIdx.x];
    }
    const int64_t slot = (c * gridDim.y + blockIdx.y) * 2;
    partial[slot] = a;
    partial[slot + 1] = b;
  }
}

// Stage 2 (forward, training): mean, invstd, running-stat update.
template <class T>
__global__ void finalize_train_kernel(const T* __restrict__ x, const double* __restrict__ partial, int S,
                                      BatchNormShape s, double momentum, double eps, compute_t<T>* save_mean,
                                      compute_t<T>* save_invstd, compute_t<T>* running_mean,
                                      compute_t<T>* running_var) {
  CUDA_KERNEL_LOOP(c, s.c) {
    double s1 = 0, s2 = 0;
    for (int k = 0; k < S; ++k) {
      s1 += partial[(c * S + k) * 2];
      s2 += partial[(c * S + k) * 2 + 1];
    }
    const double m = double(s.n * s.hw);
    const double dm = s1 / m;
    const double var = fmax(s2 / m - dm * dm, 0.0);  // biased
    const double mean = convert_value<double>(x[s.index(0, c, 0)]) + dm;
    save_mean[c] = compute_t<T>(mean);
    save_invstd[c] = compute_t<T>(batch_norm_invstd(var, eps));
    batch_norm_update_running(running_mean, running_var, c, mean, var, m, momentum);
  }
}

template <class T>
__global__ void finalize_eval_kernel(const T* running_mean, const T* running_var, int64_t C, double eps, T* save_mean,
                                     T* save_invstd) {  // T: the compute type here
  CUDA_KERNEL_LOOP(c, C) {
    save_mean[c] = running_mean[c];
    save_invstd[c] = T(batch_norm_invstd(double(running_var[c]), eps));
  }
}

// Stage 2 (backward): sums[2c] = sum_gy, sums[2c + 1] = sum_gy_xhat; dbeta / dgamma when asked.
template <class T>
__global__ void finalize_backward_kernel(const double* __restrict__ partial, int S, int64_t C, double* sums, T* dgamma,
                                         T* dbeta) {  // T: the compute type here
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

// Element-wise passes over the flat NCHW index: y[e] = op(op.channel(c), a[e], b[e]) with c = (e / HW) % C.
// Each thread takes one 16-byte pack, finds its channel with one division and steps to the next channel where
// the pack crosses a plane end. I is the index type: 32-bit divisions when the tensor allows (they cost a
// tenth of 64-bit ones, which at 2 per pack would rival the memory time).
template <class T, int V, bool kHasB, class I, class Op>
__global__ void channel_map_kernel(Op op, const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ y, I n, I C,
                                   I hw) {
  using P = Pack<T, V>;
  const I stride = I(blockDim.x) * gridDim.x, t = I(blockIdx.x) * blockDim.x + threadIdx.x;
  const I nv = n / V;
  const T zero = to_storage<T>(compute_t<T>(0));  // b's stand-in without a second operand
  for (I q = t; q < nv; q += stride) {
    const I e = q * V, plane = e / hw;
    I r = e - plane * hw, c = plane % C;
    auto k = op.channel(c);
    const P pa = reinterpret_cast<const P*>(a)[q];
    P pb, py;
    if constexpr (kHasB) pb = reinterpret_cast<const P*>(b)[q];
#pragma unroll
    for (int j = 0; j < V; ++j) {
      if (r == hw) {
        r = 0;
        c = c + 1 == C ? 0 : c + 1;
        k = op.channel(c);
      }
      py.v[j] = op(k, pa.v[j], kHasB ? pb.v[j] : zero);
      ++r;
    }
    reinterpret_cast<P*>(y)[q] = py;
  }
  for (I e = nv * V + t; e < n; e += stride) y[e] = op(op.channel((e / hw) % C), a[e], kHasB ? b[e] : zero);
}

// NHWC: the channel is the fastest index, c = e % C; neighbouring threads take neighbouring channels.
template <class T, bool kHasB, class I, class Op>
__global__ void channel_map_nhwc_kernel(Op op, const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ y, I n,
                                        I C) {
  const I stride = I(blockDim.x) * gridDim.x;
  const T zero = to_storage<T>(compute_t<T>(0));
  for (I e = I(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += stride)
    y[e] = op(op.channel(e % C), a[e], kHasB ? b[e] : zero);
}

template <class T, bool kHasB, class Op>
void channel_map(Op op, const T* a, const T* b, T* y, const BatchNormShape& s) {
  const int64_t n = s.n * s.c * s.hw;
  if (n == 0) return;
  if (s.layout == Layout::nhwc) {
    if (n + int64_t(65535) * 32 * kMapBlock < (int64_t(1) << 31))
      channel_map_nhwc_kernel<T, kHasB, int32_t>
          <<<map_grid(n), kMapBlock, 0, stream()>>>(op, a, b, y, int32_t(n), int32_t(s.c));
    else
      channel_map_nhwc_kernel<T, kHasB, int64_t><<<map_grid(n), kMapBlock, 0, stream()>>>(op, a, b, y, n, s.c);
    CUDA_CHECK_LAUNCH();
    return;
  }
  constexpr int V = kVec<T>;
  const bool vec = aligned16(a) && (!kHasB || aligned16(b)) && aligned16(y);
  // 32-bit indices when every index (and the grid stride added to one) stays below 2^31.
  const bool small = n + int64_t(65535) * 32 * kMapBlock < (int64_t(1) << 31);
  if (vec && small)
    channel_map_kernel<T, V, kHasB, int32_t>
        <<<map_grid(n / V), kMapBlock, 0, stream()>>>(op, a, b, y, int32_t(n), int32_t(s.c), int32_t(s.hw));
  else if (vec)
    channel_map_kernel<T, V, kHasB, int64_t><<<map_grid(n / V), kMapBlock, 0, stream()>>>(op, a, b, y, n, s.c, s.hw);
  else
    channel_map_kernel<T, 1, kHasB, int64_t><<<map_grid(n), kMapBlock, 0, stream()>>>(op, a, b, y, n, s.c, s.hw);
  CUDA_CHECK_LAUNCH();
}

// y = (x - mean) * gamma * invstd + beta (+ r when kResidual), then max(y, 0) when kRelu.
template <class T, bool kRelu, bool kResidual>
struct NormaliseOp {
  AffineParams<T> ap;
  template <class I>
  __device__ Affine<T> channel(I c) const {
    return ap.at(c);
  }
  __device__ T operator()(const Affine<T>& a, T x, T r) const {
    compute_t<T> y = a(x);
    if (kResidual) y += to_compute(r);
    return to_storage<T>(kRelu && y < compute_t<T>(0) ? compute_t<T>(0) : y);  // NaN passes, as relu()
  }
};

// gr = gy where the forward's output y > 0, else 0 (the residual's gradient); a is y, b is gy.
template <class T>
struct MaskOp {
  template <class I>
  __device__ int channel(I) const {
    return 0;
  }
  __device__ T operator()(int, T y, T gy) const {
    return to_compute(y) > compute_t<T>(0) ? gy : to_storage<T>(compute_t<T>(0));
  }
};

// gx = k * (g - sum_g/m - (x - mean) * invstd * sum_g_xhat/m) with k = gamma * invstd (training; sums != null),
// or gx = k * g (eval; sums == null); g = gy, or with kRelu g = gy where affine(x) > 0, else 0.
template <class T, bool kRelu>
struct InputGradOp {
  AffineParams<T> ap;
  const double* sums;
  double inv_m;
  using C = compute_t<T>;
  struct K {
    C k, mu, mean_gy, coef;
    Affine<T> affine;
  };
  template <class I>
  __device__ K channel(I c) const {
    const double is = double(ap.invstd[c]);
    return {C((ap.gamma ? double(ap.gamma[c]) : 1.0) * is), ap.mean[c], sums ? C(sums[2 * c] * inv_m) : C(0),
            sums ? C(sums[2 * c + 1] * inv_m * is) : C(0), kRelu ? ap.at(c) : Affine<T>{}};
  }
  __device__ T operator()(const K& k, T x, T gy) const {
    const C g = !kRelu || k.affine(x) > C(0) ? to_compute(gy) : C(0);
    return to_storage<T>(batch_norm_input_grad(k.k, g, k.mean_gy, to_compute(x) - k.mu, k.coef));
  }
};

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

// How stage 1 runs: V elements per pack (16-byte packs when every plane is a whole number of them and the pointers
// allow it), S slices per channel of `chunk` packs each: at least 16 values per thread, and about 1024 blocks in
// all at most (an H100 holds 132 x 8 such blocks at once).
struct StatsPlan {
  bool vec = false;
  int S = 1;
  int64_t chunk = 0;
};

template <class T>
StatsPlan stats_plan(const BatchNormShape& s, const T* x, const T* gy) {
  StatsPlan p;
  if (s.layout == Layout::nhwc) {  // slices of rows per channel tile: 16 rows a thread at least, ~1024 blocks
    const int64_t rows = s.n * s.hw, tiles = (s.c + kTileC - 1) / kTileC;
    const int64_t want = std::max<int64_t>(1, (rows + 16 * kTileRows - 1) / (16 * kTileRows));
    const int64_t slices = std::min(want, std::max<int64_t>(1, (1024 + tiles - 1) / tiles));
    p.chunk = (rows + slices - 1) / slices;
    p.S = static_cast<int>((rows + p.chunk - 1) / p.chunk);
    return p;
  }
  p.vec = s.hw % kVec<T> == 0 && aligned16(x) && (!gy || aligned16(gy));
  const int64_t mv = s.n * s.hw / (p.vec ? kVec<T> : 1);  // packs per channel
  const int64_t per_block = 16 * kReduceBlock / (p.vec ? kVec<T> : 1);
  const int64_t want = std::max<int64_t>(1, (mv + per_block - 1) / per_block);
  const int64_t cap = std::max<int64_t>(1, (1024 + s.c - 1) / s.c);
  const int64_t slices = std::min(want, cap);
  p.chunk = (mv + slices - 1) / slices;
  p.S = static_cast<int>((mv + p.chunk - 1) / p.chunk);
  return p;
}

template <class T, bool kBackward, bool kRelu = false>
void launch_partial_sums(const StatsPlan& p, const T* x, const T* gy, const AffineParams<T>& ap,
                         const BatchNormShape& s, double* partial) {
  if (s.layout == Layout::nhwc) {
    const dim3 grid(static_cast<unsigned>((s.c + kTileC - 1) / kTileC), static_cast<unsigned>(p.S));
    partial_sums_nhwc_kernel<T, kBackward, kRelu>
        <<<grid, dim3(kTileC, kTileRows), 0, stream()>>>(x, gy, ap, s, p.chunk, partial);
    CUDA_CHECK_LAUNCH();
    return;
  }
  const dim3 grid(static_cast<unsigned>(s.c), static_cast<unsigned>(p.S));
  if (p.vec)
    partial_sums_kernel<T, kVec<T>, kBackward, kRelu>
        <<<grid, kReduceBlock, 0, stream()>>>(x, gy, ap, s, p.chunk, partial);
  else
    partial_sums_kernel<T, 1, kBackward, kRelu><<<grid, kReduceBlock, 0, stream()>>>(x, gy, ap, s, p.chunk, partial);
  CUDA_CHECK_LAUNCH();
}

template <class T>
void normalise(const AffineParams<T>& ap, const T* x, const T* residual, T* y, const BatchNormShape& s, bool relu) {
  if (residual && relu)
    channel_map<T, true>(NormaliseOp<T, true, true>{ap}, x, residual, y, s);
  else if (residual)
    channel_map<T, true>(NormaliseOp<T, false, true>{ap}, x, residual, y, s);
  else if (relu)
    channel_map<T, false>(NormaliseOp<T, true, false>{ap}, x, nullptr, y, s);
  else
    channel_map<T, false>(NormaliseOp<T, false, false>{ap}, x, nullptr, y, s);
}

}  // namespace

template <class T>
void batch_norm_forward_train(const T* x, const compute_t<T>* gamma, const compute_t<T>* beta, T* y,
                              compute_t<T>* save_mean, compute_t<T>* save_invstd, compute_t<T>* running_mean,
                              compute_t<T>* running_var, const BatchNormShape& s, double momentum, double eps,
                              bool relu, const T* residual) {
  if (s.n * s.c * s.hw == 0) return;
  const StatsPlan plan = stats_plan<T>(s, x, nullptr);
  Scratch partial(sizeof(double) * 2 * s.c * plan.S);
  launch_partial_sums<T, false>(plan, x, nullptr, AffineParams<T>{}, s, partial.d());
  finalize_train_kernel<T><<<grid_for(s.c, 256), 256, 0, stream()>>>(x, partial.d(), plan.S, s, momentum, eps,
                                                                     save_mean, save_invstd, running_mean, running_var);
  CUDA_CHECK_LAUNCH();
  normalise<T>({gamma, beta, save_mean, save_invstd}, x, residual, y, s, relu);
}

template <class T>
void batch_norm_forward_eval(const T* x, const compute_t<T>* gamma, const compute_t<T>* beta,
                             const compute_t<T>* running_mean, const compute_t<T>* running_var, T* y,
                             compute_t<T>* save_mean, compute_t<T>* save_invstd, const BatchNormShape& s, double eps,
                             bool relu, const T* residual) {
  if (s.c == 0) return;
  finalize_eval_kernel<compute_t<T>>
      <<<grid_for(s.c, 256), 256, 0, stream()>>>(running_mean, running_var, s.c, eps, save_mean, save_invstd);
  CUDA_CHECK_LAUNCH();
  normalise<T>({gamma, beta, save_mean, save_invstd}, x, residual, y, s, relu);
}

template <class T>
void batch_norm_backward(const T* x, const T* gy, const compute_t<T>* gamma, const compute_t<T>* save_mean,
                         const compute_t<T>* save_invstd, T* gx, compute_t<T>* dgamma, compute_t<T>* dbeta,
                         const BatchNormShape& s, bool training, bool relu, const compute_t<T>* beta, const T* y,
                         T* gr) {
  if (s.n * s.c * s.hw == 0) return;
  KERNELS_CHECK(!(relu && gr) || y, "batch_norm_backward: the residual's gradient with relu needs the output y");
  if (gr) {  // the residual's gradient, gy masked by the forward's y > 0; the rest runs on it, unmasked
    if (relu)
      channel_map<T, true>(MaskOp<T>{}, y, gy, gr, s);
    else
      CUDA_CHECK(cudaMemcpyAsync(gr, gy, sizeof(T) * s.n * s.c * s.hw, cudaMemcpyDeviceToDevice, stream()));
    gy = gr;
    relu = false;
  }
  const AffineParams<T> ap{gamma, beta, save_mean, save_invstd};
  const bool need_sums = dgamma || dbeta || (gx && training);
  const StatsPlan plan = need_sums ? stats_plan<T>(s, x, gy) : StatsPlan{};
  // One buffer: S partial pairs per channel, then the final pair per channel.
  Scratch scratch(need_sums ? sizeof(double) * 2 * s.c * (plan.S + 1) : 0);
  double* sums = nullptr;
  if (need_sums) {
    double* partial = scratch.d();
    sums = partial + 2 * s.c * plan.S;
    if (relu)
      launch_partial_sums<T, true, true>(plan, x, gy, ap, s, partial);
    else
      launch_partial_sums<T, true, false>(plan, x, gy, ap, s, partial);
    finalize_backward_kernel<compute_t<T>>
        <<<grid_for(s.c, 256), 256, 0, stream()>>>(partial, plan.S, s.c, sums, dgamma, dbeta);
    CUDA_CHECK_LAUNCH();
  }
  if (!gx) return;
  const double* used = training ? sums : nullptr;
  const double inv_m = 1.0 / double(s.n * s.hw);
  if (relu)
    channel_map<T, true>(InputGradOp<T, true>{ap, used, inv_m}, x, gy, gx, s);
  else
    channel_map<T, true>(InputGradOp<T, false>{ap, used, inv_m}, x, gy, gx, s);
}

KERNELS_BATCH_NORM_INSTANTIATIONS

}  // namespace kernels::cuda
