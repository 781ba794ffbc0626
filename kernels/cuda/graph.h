// CUDA graphs from plain C++ (no CUDA headers): capture the work a function queues on the engine's stream
// (kernels/cuda/common.cuh) into an executable graph, then launch it again and again. Implemented in graph.cu.
//
// Allocations made while capturing come from the graph's own private pool (runtime.h), so the addresses baked
// into the graph stay the graph's until it is destroyed. Capture runs in relaxed mode: the allocator may still
// cudaMalloc a block its pool lacks. Anything that needs the host to wait for the stream (a synchronous copy, a
// stream or event synchronization) is illegal during capture; CUDA then invalidates the capture and capture()
// reports why.
#pragma once
#include <functional>
#include <string>

namespace kernels::cuda {

class Graph {
 public:
  Graph();
  ~Graph();  // destroys the graph and retires its pool
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // Records what `body` queues on the stream; none of it runs now. Returns "" on success, else why the capture
  // failed (the error CUDA gave, or what `body` threw); the graph is then empty and the pool retired. Host code
  // in `body` runs once, now: a launch replays the device work only.
  std::string capture(const std::function<void()>& body);
  bool ready() const { return exec_ != nullptr; }
  void launch();  // queues the captured work on the stream; throws unless ready()

 private:
  void reset();
  void* graph_ = nullptr;  // cudaGraph_t
  void* exec_ = nullptr;   // cudaGraphExec_t
  int pool_ = 0;
};

}  // namespace kernels::cuda
