#include "engine/step_graph.h"

#include "engine/autograd.h"
#include "engine/error.h"

#if ENGINE_HAVE_CUDA
#include "kernels/cuda/graph.h"
#endif

namespace engine {

struct StepGraph::Captured {
#if ENGINE_HAVE_CUDA
  kernels::cuda::Graph graph;
#endif
  std::vector<Tensor> outputs;
};

StepGraph::StepGraph(bool wanted, Device device, int warmup_steps) : warmup_left_(warmup_steps) {
  // An eager step first creates what the step keeps across steps (momentum buffers, cuDNN plans) outside the
  // capture: created inside a capture that then fails, they would exist without ever having been written.
  ENGINE_CHECK(warmup_steps >= 1, "StepGraph: warmup_steps is ", warmup_steps,
               "; at least one eager step must come before a capture");
  if (!wanted) return;
#if ENGINE_HAVE_CUDA
  if (!device.is_cuda())
    notice_ = cat("CUDA graphs need a CUDA device; this run on ", device.str(), " trains without them");
  else if (detect_anomaly())
    notice_ = "CUDA graphs are off under --detect-anomaly (it reads every op's output on the host)";
  else
    active_ = true;
#else
  notice_ =
      cat("CUDA graphs need a CUDA build (this one is CPU-only); this run on ", device.str(), " trains without them");
#endif
}

StepGraph::~StepGraph() = default;

std::string StepGraph::take_notice() {
  std::string n;
  n.swap(notice_);
  return n;
}

std::vector<Tensor> StepGraph::run(const Step& step, bool capturable) {
  if (!active_ || !capturable || warmup_left_ > 0) {
    if (active_ && capturable) --warmup_left_;
    return step();
  }
#if ENGINE_HAVE_CUDA
  if (!captured_) {
    auto c = std::make_unique<Captured>();
    const std::string why = c->graph.capture([&] { c->outputs = step(); });
    if (!why.empty()) {
      active_ = false;
      notice_ =
          cat("CUDA graphs: the training step could not be captured (", why, "); training goes on without graphs");
      c.reset();      // before the eager step: the capture's tensors go back to the general cache
      return step();  // nothing of the capture ran
    }
    captured_ = std::move(c);
    notice_ = "CUDA graphs: the training step is captured; later steps replay it";
  }
  captured_->graph.launch();
  ++replays_;
  return captured_->outputs;
#else
  return step();
#endif
}

}  // namespace engine
