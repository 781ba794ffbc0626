// Convolution through cuDNN 9's convolution API (cudnn_cnn): an optional engine beside our own kernels.
// Per shape (and dtype and TF32 setting) a Plan holds the descriptors and, per direction, the algorithm that
// cudnnFind*AlgorithmEx measured fastest among those the math mode allows, found on first use and cached.
// Math: float uses CUDNN_FMA_MATH unless kernels::cuda::allow_tf32() (CUDNN_DEFAULT_MATH would let cuDNN pick
// TF32 kernels on Ampere and newer), CUDNN_TENSOR_OP_MATH when it is; double uses CUDNN_DEFAULT_MATH.
// Workspaces come from the caching allocator. The bias is added and reduced by our CUDA kernels.
// Layout::nhwc describes x, y and the filter as CUDNN_TENSOR_NHWC (dimensions still given as N, C, H, W; the
// filter [OC, KH, KW, C]), so cuDNN runs its channels-last kernels on the engine's buffers as they are; the
// layout is part of the plan's key.
#include "kernels/conv.h"

#include <algorithm>
#include <array>
#include <climits>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/runtime.h"
#include "kernels/cudnn/common.h"

namespace kernels::cudnn {
namespace {

// Algorithms that want more scratch than this are not considered.
constexpr std::size_t kMaxWorkspace = std::size_t(512) << 20;

template <class T>
cudnnMathType_t wanted_math() {
  if (data_type<T>() == CUDNN_DATA_BFLOAT16) return CUDNN_TENSOR_OP_MATH;  // bf16 is for the tensor cores
  if (data_type<T>() != CUDNN_DATA_FLOAT) return CUDNN_DEFAULT_MATH;
  return kernels::cuda::allow_tf32() ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH;
}

template <class Perf>
bool acceptable(const Perf& p, bool strict_fp32) {
  if (p.status != CUDNN_STATUS_SUCCESS) return false;
  if (p.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) return false;  // may round float to half
  if (strict_fp32 && p.mathType == CUDNN_TENSOR_OP_MATH) return false;
  return p.memory <= kMaxWorkspace;
}

template <class Algo>
struct Choice {
  bool chosen = false;
  Algo algo{};
  std::size_t workspace = 0;
};

struct Plan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  // One convolution descriptor per direction, so each keeps the math type of its own chosen algorithm.
  cudnnConvolutionDescriptor_t fwd = nullptr, bwd_data = nullptr, bwd_filter = nullptr;
  Choice<cudnnConvolutionFwdAlgo_t> fwd_algo;
  Choice<cudnnConvolutionBwdDataAlgo_t> bwd_data_algo;
  Choice<cudnnConvolutionBwdFilterAlgo_t> bwd_filter_algo;
};

using Key = std::array<int64_t, 14>;

// Descriptors for one shape and dtype; the math types are set when an algorithm is chosen.
template <class T>
std::unique_ptr<Plan> make_plan(const Conv2dShape& s) {
  const cudnnDataType_t dt = data_type<T>();
  auto plan = std::make_unique<Plan>();
  CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan->x));
  CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan->y));
  CUDNN_CHECK(cudnnCreateFilterDescriptor(&plan->w));
  const cudnnTensorFormat_t format = s.layout == Layout::nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
  CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan->x, format, dt, int(s.n), int(s.c), int(s.h), int(s.w)));
  CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan->y, format, dt, int(s.n), int(s.oc), int(s.oh), int(s.ow)));
  CUDNN_CHECK(cudnnSetFilter4dDescriptor(plan->w, dt, format, int(s.oc), int(s.c), int(s.kh), int(s.kw)));
  for (cudnnConvolutionDescriptor_t* d : {&plan->fwd, &plan->bwd_data, &plan->bwd_filter}) {
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(d));
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(*d, int(s.pad_h), int(s.pad_w), int(s.stride_h), int(s.stride_w), 1, 1,
                                                CUDNN_CROSS_CORRELATION, compute_type<T>()));
    CUDNN_CHECK(cudnnSetConvolutionMathType(*d, wanted_math<T>()));
  }
  // Our shape arithmetic and cuDNN's must agree, or the buffers we allocated are the wrong size.
  int n = 0, c = 0, h = 0, w = 0;
  CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(plan->fwd, plan->x, plan->w, &n, &c, &h, &w));
  KERNELS_CHECK(n == s.n && c == s.oc && h == s.oh && w == s.ow, "conv2d (cuDNN): cuDNN computes output [", n, ", ", c,
                ", ", h, ", ", w, "], the engine [", s.n, ", ", s.oc, ", ", s.oh, ", ", s.ow, "]");
  return plan;
}

template <class T>
Plan& plan_for(const Conv2dShape& s) {
  const int64_t largest = std::max(s.n * s.c * s.h * s.w, s.n * s.oc * s.oh * s.ow);
  KERNELS_CHECK(largest <= INT_MAX, "conv2d (cuDNN): a tensor of ", largest,
                " elements is beyond cuDNN's 32-bit descriptors; use the native convolution engine or a smaller batch");
  static std::mutex mu;
  static auto* cache = new std::map<Key, std::unique_ptr<Plan>>;  // never destroyed, as the handle
  const Key key{s.n,
                s.c,
                s.h,
                s.w,
                s.oc,
                s.kh,
                s.kw,
                s.stride_h,
                s.stride_w,
                s.pad_h,
                s.pad_w,
                int64_t(data_type<T>()),
                int64_t(kernels::cuda::allow_tf32()),
                int64_t(s.layout)};
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache->find(key);
  if (it == cache->end()) it = cache->emplace(key, make_plan<T>(s)).first;
  return *it->second;
}

// Runs the heuristics (to size a workspace), then Find*Ex (which times the candidates on the real buffers,
// overwriting the output), and keeps the fastest acceptable result; the heuristics' first acceptable choice
// is the fallback. Sets the descriptor's math type to the chosen algorithm's and returns its workspace size.
template <class T, class Perf, class Algo, class GetV7, class FindEx, class WorkspaceSize>
void choose(Choice<Algo>& out, cudnnConvolutionDescriptor_t conv, int max_count, GetV7 get_v7, FindEx find_ex,
            WorkspaceSize workspace_size, const char* direction, const Conv2dShape& s) {
  const bool strict = data_type<T>() == CUDNN_DATA_FLOAT && !kernels::cuda::allow_tf32();
  max_count = std::max(max_count, 1);
  std::vector<Perf> heur(max_count), found(max_count);
  int n_heur = 0, n_found = 0;
  CUDNN_CHECK(get_v7(max_count, &n_heur, heur.data()));
  std::size_t ws = 0;
  for (int i = 0; i < n_heur; ++i)
    if (acceptable(heur[i], strict)) ws = std::max(ws, heur[i].memory);
  {
    kernels::cuda::DeviceBuffer<char> buf;
    if (ws > 0) buf.reset(ws);
    CUDNN_CHECK(find_ex(max_count, &n_found, found.data(), static_cast<void*>(buf.get()), ws));
  }
  const Perf* pick = nullptr;
  for (int i = 0; i < n_found && !pick; ++i)
    if (acceptable(found[i], strict) && found[i].memory <= ws) pick = &found[i];
  for (int i = 0; i < n_heur && !pick; ++i)
    if (acceptable(heur[i], strict)) pick = &heur[i];
  KERNELS_CHECK(pick, "conv2d (cuDNN): no ", direction, " algorithm for input [", s.n, ", ", s.c, ", ", s.h, ", ", s.w,
                "], weight [", s.oc, ", ", s.c, ", ", s.kh, ", ", s.kw, "] in this math mode",
                strict ? " (strict FP32)" : "", "; use the native convolution engine");
  // Strict FP32 stays FMA-only even if cuDNN reports an algorithm as CUDNN_DEFAULT_MATH, which on Ampere and
  // later permits TF32.
  CUDNN_CHECK(cudnnSetConvolutionMathType(conv, strict ? CUDNN_FMA_MATH : pick->mathType));
  out.algo = pick->algo;
  CUDNN_CHECK(workspace_size(pick->algo, &out.workspace));
  out.chosen = true;
}

}  // namespace

template <class T>
void conv2d_forward(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y) {
  if (s.n == 0) return;
  Plan& p = plan_for<T>(s);
  cudnnHandle_t h = handle();
  if (!p.fwd_algo.chosen) {
    int max_count = 0;
    CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max_count));
    choose<T, cudnnConvolutionFwdAlgoPerf_t>(
        p.fwd_algo, p.fwd, max_count,
        [&](int req, int* ret, cudnnConvolutionFwdAlgoPerf_t* perf) {
          return cudnnGetConvolutionForwardAlgorithm_v7(h, p.x, p.w, p.fwd, p.y, req, ret, perf);
        },
        [&](int req, int* ret, cudnnConvolutionFwdAlgoPerf_t* perf, void* ws, std::size_t bytes) {
          return cudnnFindConvolutionForwardAlgorithmEx(h, p.x, x, p.w, w, p.fwd, p.y, y, req, ret, perf, ws, bytes);
        },
        [&](cudnnConvolutionFwdAlgo_t algo, std::size_t* bytes) {
          return cudnnGetConvolutionForwardWorkspaceSize(h, p.x, p.w, p.fwd, p.y, algo, bytes);
        },
        "forward", s);
  }
  kernels::cuda::DeviceBuffer<char> ws;
  if (p.fwd_algo.workspace > 0) ws.reset(p.fwd_algo.workspace);
  const compute_t<T> one = 1, zero = 0;  // scaling factors: float for float and bf16 data
  CUDNN_CHECK(cudnnConvolutionForward(h, &one, p.x, x, p.w, w, p.fwd, p.fwd_algo.algo, ws.get(), p.fwd_algo.workspace,
                                      &zero, p.y, y));
  if (bias) kernels::cuda::conv2d_add_bias<T>(s, bias, y);
}

template <class T>
void conv2d_backward(const Conv2dShape& s, const T* x, const T* w, const T* gy, T* gx, T* gw, T* gb) {
  if (gb) kernels::cuda::conv2d_bias_grad<T>(s, gy, gb);
  if (!gx && !gw) return;
  if (s.n == 0) {
    if (gw) kernels::cuda::memset_zero(gw, sizeof(T) * s.oc * s.ckk());
    return;
  }
  Plan& p = plan_for<T>(s);
  cudnnHandle_t h = handle();
  const compute_t<T> one = 1, zero = 0;  // scaling factors: float for float and bf16 data
  if (gx) {
    if (!p.bwd_data_algo.chosen) {
      int max_count = 0;
      CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &max_count));
      choose<T, cudnnConvolutionBwdDataAlgoPerf_t>(
          p.bwd_data_algo, p.bwd_data, max_count,
          [&](int req, int* ret, cudnnConvolutionBwdDataAlgoPerf_t* perf) {
            return cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p.w, p.y, p.bwd_data, p.x, req, ret, perf);
          },
          [&](int req, int* ret, cudnnConvolutionBwdDataAlgoPerf_t* perf, void* ws, std::size_t bytes) {
            return cudnnFindConvolutionBackwardDataAlgorithmEx(h, p.w, w, p.y, gy, p.bwd_data, p.x, gx, req, ret, perf,
                                                               ws, bytes);
          },
          [&](cudnnConvolutionBwdDataAlgo_t algo, std::size_t* bytes) {
            return cudnnGetConvolutionBackwardDataWorkspaceSize(h, p.w, p.y, p.bwd_data, p.x, algo, bytes);
          },
          "backward-data", s);
    }
    kernels::cuda::DeviceBuffer<char> ws;
    if (p.bwd_data_algo.workspace > 0) ws.reset(p.bwd_data_algo.workspace);
    CUDNN_CHECK(cudnnConvolutionBackwardData(h, &one, p.w, w, p.y, gy, p.bwd_data, p.bwd_data_algo.algo, ws.get(),
                                             p.bwd_data_algo.workspace, &zero, p.x, gx));
  }
  if (gw) {
    if (!p.bwd_filter_algo.chosen) {
      int max_count = 0;
      CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &max_count));
      choose<T, cudnnConvolutionBwdFilterAlgoPerf_t>(
          p.bwd_filter_algo, p.bwd_filter, max_count,
          [&](int req, int* ret, cudnnConvolutionBwdFilterAlgoPerf_t* perf) {
            return cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p.x, p.y, p.bwd_filter, p.w, req, ret, perf);
          },
          [&](int req, int* ret, cudnnConvolutionBwdFilterAlgoPerf_t* perf, void* ws, std::size_t bytes) {
            return cudnnFindConvolutionBackwardFilterAlgorithmEx(h, p.x, x, p.y, gy, p.bwd_filter, p.w, gw, req, ret,
                                                                 perf, ws, bytes);
          },
          [&](cudnnConvolutionBwdFilterAlgo_t algo, std::size_t* bytes) {
            return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, p.x, p.y, p.bwd_filter, p.w, algo, bytes);
          },
          "backward-filter", s);
    }
    kernels::cuda::DeviceBuffer<char> ws;
    if (p.bwd_filter_algo.workspace > 0) ws.reset(p.bwd_filter_algo.workspace);
    CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, &one, p.x, x, p.y, gy, p.bwd_filter, p.bwd_filter_algo.algo, ws.get(),
                                               p.bwd_filter_algo.workspace, &zero, p.w, gw));
  }
}

template void conv2d_forward<float>(const Conv2dShape&, const float*, const float*, const float*, float*);
template void conv2d_forward<double>(const Conv2dShape&, const double*, const double*, const double*, double*);
template void conv2d_backward<float>(const Conv2dShape&, const float*, const float*, const float*, float*, float*,
                                     float*);
template void conv2d_backward<double>(const Conv2dShape&, const double*, const double*, const double*, double*, double*,
                                      double*);
template void conv2d_forward<bf16>(const Conv2dShape&, const bf16*, const bf16*, const bf16*, bf16*);
template void conv2d_backward<bf16>(const Conv2dShape&, const bf16*, const bf16*, const bf16*, bf16*, bf16*, bf16*);

}  // namespace kernels::cudnn
