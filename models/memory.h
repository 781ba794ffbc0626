// Peak memory of one training step (forward, cross-entropy, backward, SGD update), estimated from a trace of the
// model's forward (models/trace.h) and what each op's backward keeps alive (engine/ops/*.cpp), so that a run that
// cannot fit is refused before it allocates anything.
//
// The model of a step, as the engine runs it:
//  - every op's output stays alive until the backward of the op that reads it (the tape's nodes hold their
//    inputs), so at the end of the forward all activations are saved; extras beside them: BN's batch mean and
//    inverse std, max pool's int32 argmax, cross-entropy's gradient;
//  - the trainer drops the previous step's gradients only after the forward (zero_grad before backward), so the
//    forward runs with a full set of gradients; in backward they come back op by op;
//  - backward walks the ops in reverse: each frees the activations only it read, while the gradient of its output
//    and of its input (and, inside a residual block, the shortcut's pending gradient) are alive;
//  - convolution scratch: on the CPU a per-thread im2col buffer that only grows (the largest over the model),
//    on CUDA col/output buffers from the caching allocator for the duration of one conv call;
//  - data: the batch, plus what the caller says the run keeps resident (the uint8 dataset and its plan).
// Not counted: the CUDA context, cuBLAS/cuDNN handles and cuDNN's own workspace (chosen by its algorithm search
// at run time; the estimate uses our kernels' scratch), and the caching allocator's rounding and cached blocks.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/nn/module.h"
#include "engine/tensor.h"
#include "models/trace.h"

namespace models {

struct StepSpec {
  engine::Shape input;  // the batch, [N, C, H, W]
  engine::DType dtype = engine::DType::f32;
  engine::Device device = engine::Device::cpu();
  bool momentum = true;    // SGD keeps a velocity per parameter when momentum > 0
  int64_t data_bytes = 0;  // what the run will allocate on the device for its data, beside the batch
  // The step is replayed as a CUDA graph (--cuda-graphs on): its memory stays held by the graph's private pool,
  // so evaluation between epochs allocates beside it instead of reusing it (MemoryEstimate::evaluation).
  bool cuda_graph = false;
};

// Bytes an op keeps for backward: its output (none for a view) and its extras.
struct OpMemory {
  std::string op;    // the engine op: "conv2d", "batch_norm2d", ..., "cross_entropy"
  std::string name;  // the module's name in the model ("layer1.0.conv1"; the block for its add, shortcut, relu)
  engine::Shape in, out;
  int64_t saved_bytes = 0;      // output + extras, alive from this op's forward until its consumer's backward
  int64_t workspace_bytes = 0;  // convolution scratch of this op (CPU: the buffers it would grow to)
};

struct MemoryEstimate {
  int64_t parameters = 0, gradients = 0, momentum = 0, buffers = 0;  // buffers: BN running statistics
  int64_t activations = 0;  // saved for backward by the end of the forward (the loss's gradient included)
  int64_t workspace = 0;    // the largest convolution scratch (CPU: held all run; CUDA: during one conv call)
  int64_t data = 0;         // the batch (x and labels) plus StepSpec::data_bytes
  // With StepSpec::cuda_graph: an evaluation forward beside the graph's pool, without autograd: at most three
  // activations at once (an op's input and output, and a residual block's input held for its shortcut) at their
  // largest, plus the conv scratch. Part of peak.
  int64_t evaluation = 0;
  int64_t peak = 0;  // the estimated high-water mark of the step: the sum of the parts below
  // At the peak: what is alive of the activations and of the parameter gradients, and what is in flight
  // (gradients of activations, a shortcut's pending gradient, CUDA conv scratch).
  int64_t peak_activations = 0, peak_gradients = 0, peak_in_flight = 0;
  std::string peak_at;  // "forward, layer4.1.bn2" or "backward, layer1.0.conv1"
  bool peak_in_backward = false;
  std::vector<OpMemory> ops;  // in forward order, cross_entropy last
  // The part of the peak held in tensor storage (what engine::host_storage_stats() and the CUDA allocator
  // count): all of it but the CPU's per-thread conv scratch, which is not a tensor.
  int64_t tensor_peak() const { return peak - cpu_scratch; }
  int64_t cpu_scratch = 0;  // inside peak on the CPU, 0 on CUDA
};

// Traces the model's forward at spec.input (one batch-1 forward, see models/trace.h), then estimates.
MemoryEstimate estimate_step_memory(engine::nn::Module& model, const StepSpec& spec);
// The same from a trace already taken at spec.input (the summary's, or with_batch of one).
MemoryEstimate estimate_step_memory(const engine::nn::Module& model, const Trace& trace, const StepSpec& spec);

// Bytes of a uint8 image set with int32 labels and the trainer's per-example plan (4 int32: index, crop, flip).
int64_t dataset_bytes(int64_t examples, int64_t rows, int64_t cols);

struct MemoryFit {
  bool fits = false;
  int64_t needed = 0, available = 0;
  int64_t largest_batch = 0;  // the largest batch whose estimate fits in `available` (0: not even 1)
  MemoryEstimate estimate;    // for the batch asked
  std::string message;        // one line: the estimate, what is available, and (if it does not fit) what would
};

// What a process needs beside the tensors of its step: real runs (train_fmnist on the CPU, /usr/bin/time -v)
// had a resident size 5-12% above the estimated tensor peak (libraries, the loaded data set, heap
// fragmentation), so a step must fit with 15% to spare.
inline int64_t with_headroom(int64_t peak) { return peak + peak / 100 * 15; }

// Whether a step of `spec` fits in `available` bytes (with_headroom of its estimate), and the largest batch that does
// (the estimate grows with the batch, so a bisection finds it).
MemoryFit check_step_memory(engine::nn::Module& model, const StepSpec& spec, int64_t available);

// Memory a run on `device` may still take. CPU: MemAvailable from /proc/meminfo, lowered to what the cgroup
// limit (/sys/fs/cgroup/memory.max less memory.current) leaves, if one applies. CUDA: cudaMemGetInfo's free
// bytes. `source`, when given, says which figure it was.
int64_t available_memory(engine::Device device, std::string* source = nullptr);

// The same from given /proc/meminfo and cgroup texts (empty: absent), so tests can feed it.
int64_t available_host_memory(const std::string& meminfo, const std::string& cgroup_max,
                              const std::string& cgroup_current, std::string* source = nullptr);

// 1536 -> "1.5 KiB", 25769803776 -> "24.0 GiB".
std::string format_bytes(int64_t bytes);

// One line: "estimated peak 1.2 GiB per step (parameters 44.7 MiB, gradients ..., activations ..., ...)".
std::string describe(const MemoryEstimate& e);

}  // namespace models
