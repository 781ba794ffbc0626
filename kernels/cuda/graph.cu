#include <cuda_runtime.h>

#include "kernels/check.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/graph.h"
#include "kernels/cuda/runtime.h"

namespace kernels::cuda {

Graph::Graph() = default;

Graph::~Graph() {
  // Must not throw: errors of the destroy calls are dropped (the process is usually ending with the run).
  if (exec_) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
  if (graph_) cudaGraphDestroy(static_cast<cudaGraph_t>(graph_));
  if (pool_) retire_private_pool(pool_);
}

void Graph::reset() {
  if (exec_) CUDA_CHECK(cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_)));
  if (graph_) CUDA_CHECK(cudaGraphDestroy(static_cast<cudaGraph_t>(graph_)));
  exec_ = graph_ = nullptr;
  if (pool_) retire_private_pool(pool_);
  pool_ = 0;
}

std::string Graph::capture(const std::function<void()>& body) {
  reset();
  bind_thread();
  cudaStream_t s = stream();
  // Work queued before the capture must not be part of it, and the pool must start on a quiet stream.
  CUDA_CHECK(cudaStreamSynchronize(s));
  // The capture's pool starts empty, so it allocates a whole step afresh: give the general cache's free blocks
  // back first, so that the step fits twice only where it has to (the eager path refills the cache later).
  empty_cache();
  pool_ = create_private_pool();
  set_allocation_pool(pool_);
  std::string why;
  cudaGraph_t graph = nullptr;
  cudaError_t err = cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed);
  if (err != cudaSuccess) {
    why = kernels::cat("cudaStreamBeginCapture: ", cudaGetErrorString(err));
  } else {
    try {
      body();
    } catch (const std::exception& e) {
      why = e.what();
    } catch (...) {
      why = "the step threw an exception that is not a std::exception";
    }
    err = cudaStreamEndCapture(s, &graph);  // ends the capture even when body threw
    if (why.empty() && err != cudaSuccess) why = kernels::cat("the capture was invalidated: ", cudaGetErrorString(err));
  }
  set_allocation_pool(0);
  if (why.empty()) {
    cudaGraphExec_t exec = nullptr;
    err = cudaGraphInstantiate(&exec, graph, 0);
    if (err != cudaSuccess) {
      why = kernels::cat("cudaGraphInstantiate: ", cudaGetErrorString(err));
    } else {
      graph_ = graph;
      exec_ = exec;
      return "";
    }
  }
  cudaGetLastError();  // a failed capture leaves its error sticky for the next check; it is reported here
  if (graph) cudaGraphDestroy(graph);
  retire_private_pool(pool_);
  pool_ = 0;
  return why;
}

void Graph::launch() {
  KERNELS_CHECK(exec_, "CUDA graph: launch() before a successful capture()");
  CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_), stream()));
}

}  // namespace kernels::cuda
