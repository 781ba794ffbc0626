// A training step run eagerly or replayed as a CUDA graph (train_fmnist --cuda-graphs on; kernels/cuda/graph.h).
//
// Small networks are launch-bound: a ResNet-20 step is hundreds of short kernels, each paying the host's launch
// cost. After warm-up (the momentum buffers exist, the conv engine has chosen its kernels, the allocator's cache
// is warm) the step is captured once and every later step is one graph launch. What makes the step replayable:
//   - it reads its batch from tensors that live across steps (the caller copies each new batch into them);
//   - the learning rate is read by the SGD kernel from device memory (optim::SGD::set_lr writes it), so a new
//     value needs no new capture; everything else the step's kernels take is fixed while shapes stay the same;
//   - no host sync inside the step (metrics are read every 50 steps, outside it);
//   - what the capture allocates comes from the graph's private pool (kernels/cuda/block_cache.h).
// Host code in the step (building the autograd tape, the optimizer's table) runs once, at capture; a replay
// repeats only the device work, and returns the tensors the captured step returned, refreshed.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/tensor.h"

namespace engine {

class StepGraph {
 public:
  using Step = std::function<std::vector<Tensor>()>;
  // wanted: the user asked for graphs. On the CPU, in a build without CUDA, or under anomaly detection (which
  // reads every op's output on the host: engine::detect_anomaly()) they stay off and take_notice() says why.
  StepGraph(bool wanted, Device device, int warmup_steps = 2);
  ~StepGraph();
  StepGraph(const StepGraph&) = delete;
  StepGraph& operator=(const StepGraph&) = delete;

  // Whether steps may be captured: the caller then feeds them from tensors that live across steps.
  bool active() const { return active_; }
  // One step. Runs `step` eagerly while warming up, when graphs are off, and when `capturable` is false (a batch
  // of another shape); the first capturable call after warm-up captures it and launches the capture; later ones
  // launch it again. A failed capture turns graphs off, sets notice(), and runs the step eagerly.
  std::vector<Tensor> run(const Step& step, bool capturable = true);
  // Why graphs are off, or how the capture went, once per change (then ""): the caller prints it.
  std::string take_notice();
  int64_t replays() const { return replays_; }  // launches of the captured graph (the capturing step included)

 private:
  struct Captured;
  bool active_ = false;
  int warmup_left_ = 0;
  int64_t replays_ = 0;
  std::string notice_;
  std::unique_ptr<Captured> captured_;
};

}  // namespace engine
