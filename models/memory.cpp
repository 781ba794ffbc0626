#include "models/memory.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include "engine/device.h"
#include "engine/nn/layers.h"
#include "kernels/conv.h"

namespace models {

using engine::Shape;
namespace nn = engine::nn;

namespace {

// One op of the step with the byte counts the timeline needs.
struct StepOp {
  OpMemory mem;
  int64_t out_bytes = 0;    // a new output tensor (0 for a view)
  int64_t extra_bytes = 0;  // saved beside it (BN statistics, argmax, the loss's gradient)
  int64_t grad_out = 0;     // gradient of the output, alive during this op's backward
  int64_t grad_in = 0;      // gradient of the input it allocates (0: none, a view, or passed through)
  int64_t param_bytes = 0;  // its parameters, whose gradients it writes
  int64_t cuda_scratch = 0;
  int64_t pending = 0;  // inside a residual block: the shortcut's gradient of the block input, waiting
  bool merges = false;  // the block's first op: its input gradient is added to the pending one
};

// The engine op's name ("batch_norm2d_relu" stays itself), except flatten's view, which records as reshape.
std::string op_name(const TracedOp& t) { return t.kind == TracedOpKind::flatten ? "flatten" : t.op; }

// The scratch of one convolution, from the chunking of kernels/cpu/conv.cpp and kernels/cuda/conv.cu: a column
// buffer [C*KH*KW, nb*OH*OW] and a GEMM output / permuted gradient [OC, nb*OH*OW].
struct ConvScratch {
  int64_t col = 0, out = 0;  // elements
};

ConvScratch conv_scratch(const nn::Conv2d& c, const Shape& in, const Shape& out, bool cuda) {
  kernels::Conv2dShape s;
  s.n = in[0], s.c = in[1], s.h = in[2], s.w = in[3];
  s.oc = c.out_channels, s.kh = s.kw = c.kernel;
  s.stride_h = s.stride_w = c.stride, s.pad_h = s.pad_w = c.padding;
  s.oh = out[2], s.ow = out[3];
  const int64_t nb = kernels::conv_chunk_images(s, cuda ? kernels::kCudaConvChunkElems : kernels::kCpuConvChunkElems);
  const int64_t np = nb * s.out_pixels();
  ConvScratch r;
  // The CPU skips im2col only for a pointwise conv of one image; CUDA for a pointwise conv run per image. Both
  // need the output buffer only for chunks of several images (CUDA: not even for those of >= 64 pixels): the
  // estimate keeps it whenever nb > 1, an upper bound.
  r.col = s.pointwise() && nb == 1 ? 0 : s.ckk() * np;
  r.out = nb > 1 ? s.oc * np : 0;
  return r;
}

int64_t bytes_of(const Shape& s, std::size_t elem) { return engine::numel_of(s) * static_cast<int64_t>(elem); }

}  // namespace

namespace {
void check_spec(const StepSpec& spec) {
  ENGINE_CHECK(spec.input.size() == 4 && spec.input[0] > 0,
               "estimate_step_memory: the batch must be [N, C, H, W] with ", "N > 0, got ",
               engine::shape_str(spec.input));
}
}  // namespace

MemoryEstimate estimate_step_memory(nn::Module& model, const StepSpec& spec) {
  check_spec(spec);
  return estimate_step_memory(model, trace_forward(model, spec.input), spec);
}

MemoryEstimate estimate_step_memory(const nn::Module& model, const Trace& trace, const StepSpec& spec) {
  check_spec(spec);
  ENGINE_CHECK(trace.input == spec.input, "estimate_step_memory: the trace is of ", engine::shape_str(trace.input),
               " but the step's batch is ", engine::shape_str(spec.input));
  const std::size_t elem = engine::dtype_size(spec.dtype);
  const bool cuda = spec.device.is_cuda();

  // ---- the ops, from the trace ----
  struct Block {
    Shape in;
    size_t first;
  };
  std::vector<Block> blocks;
  std::vector<StepOp> ops;
  int64_t scratch_col = 0, scratch_out = 0;  // the CPU's per-thread buffers grow to the largest conv's
  // A residual join: while the block's ops so far run backward, the shortcut's gradient of its input waits.
  auto pend_shortcut = [&] {
    ENGINE_CHECK(!blocks.empty(), "estimate_step_memory: a residual add outside a block");
    const Block& b = blocks.back();
    for (size_t i = b.first; i < ops.size(); ++i) ops[i].pending = bytes_of(b.in, elem);
    if (b.first < ops.size()) ops[b.first].merges = true;
  };
  for (const TracedOp& t : trace.ops) {
    if (t.kind == TracedOpKind::begin) {
      blocks.push_back({t.in, ops.size()});
      continue;
    }
    if (t.kind == TracedOpKind::end) {
      blocks.pop_back();
      continue;
    }
    StepOp op;
    op.mem.op = op_name(t);
    op.mem.name = !t.module ? "?" : t.module->path().empty() ? "(model)" : t.module->path();
    op.mem.in = t.in;
    op.mem.out = t.out;
    op.out_bytes = bytes_of(t.out, elem);
    op.grad_out = op.out_bytes;
    op.grad_in = bytes_of(t.in, elem);
    switch (t.kind) {
      case TracedOpKind::conv2d: {
        op.param_bytes = t.module->num_parameters() * static_cast<int64_t>(elem);
        const ConvScratch cs = conv_scratch(dynamic_cast<const nn::Conv2d&>(*t.module), t.in, t.out, cuda);
        op.mem.workspace_bytes = (cs.col + cs.out) * static_cast<int64_t>(elem);
        if (cuda) op.cuda_scratch = op.mem.workspace_bytes;
        scratch_col = std::max(scratch_col, cs.col);
        scratch_out = std::max(scratch_out, cs.out);
        break;
      }
      case TracedOpKind::batch_norm:
        op.param_bytes = t.module->num_parameters() * static_cast<int64_t>(elem);
        op.extra_bytes = 2 * t.in[1] * static_cast<int64_t>(elem);  // batch mean and inverse std
        break;
      case TracedOpKind::batch_norm_add_relu:  // BN as above, and the join: it saves only its output (the mask)
        op.param_bytes = t.module->num_parameters() * static_cast<int64_t>(elem);
        op.extra_bytes = 2 * t.in[1] * static_cast<int64_t>(elem);
        pend_shortcut();
        op.pending = op.out_bytes;  // its backward also writes the residual's gradient, beside x's
        break;
      case TracedOpKind::linear:
        op.param_bytes = t.module->num_parameters() * static_cast<int64_t>(elem);
        break;
      case TracedOpKind::max_pool:
        op.extra_bytes = engine::numel_of(t.out) * static_cast<int64_t>(sizeof(int32_t));  // argmax
        break;
      case TracedOpKind::flatten:  // a view: no new output, and its backward reshapes the gradient
        op.out_bytes = op.grad_in = 0;
        break;
      case TracedOpKind::add:  // backward passes its gradient on to both branches
        op.grad_in = 0;
        pend_shortcut();
        op.mem.in = t.out;  // both operands have the sum's shape
        break;
      default:
        break;
    }
    if (ops.empty()) op.grad_in = 0;  // the batch does not require grad
    op.mem.saved_bytes = op.out_bytes + op.extra_bytes;
    ops.push_back(op);
  }
  const Shape& logits = trace.output;
  ENGINE_CHECK(logits.size() == 2, "estimate_step_memory: the model's output ", engine::shape_str(logits),
               " is not [N, classes]");
  {  // the loss: a scalar, with the gradient softmax - target computed in the forward and kept
    StepOp ce;
    ce.mem.op = "cross_entropy";
    ce.mem.name = "(loss)";
    ce.mem.in = logits;
    ce.mem.out = {};
    ce.out_bytes = ce.grad_out = static_cast<int64_t>(elem);
    ce.extra_bytes = ce.grad_in = bytes_of(logits, elem);
    ce.mem.saved_bytes = ce.out_bytes + ce.extra_bytes;
    ops.push_back(ce);
  }

  // ---- persistent parts ----
  MemoryEstimate e;
  e.parameters = model.num_parameters() * static_cast<int64_t>(elem);
  e.gradients = e.parameters;
  e.momentum = spec.momentum ? e.parameters : 0;
  for (const auto& [name, b] : model.named_buffers()) e.buffers += b.numel() * static_cast<int64_t>(elem);
  e.data = bytes_of(spec.input, elem) + spec.input[0] * static_cast<int64_t>(sizeof(int32_t)) + spec.data_bytes;
  e.cpu_scratch = cuda ? 0 : (scratch_col + scratch_out) * static_cast<int64_t>(elem);
  for (const auto& op : ops) {
    e.activations += op.mem.saved_bytes;
    e.workspace = std::max(e.workspace, op.cuda_scratch);
  }
  if (!cuda) e.workspace = e.cpu_scratch;
  const int64_t fixed = e.parameters + e.momentum + e.buffers + e.data + e.cpu_scratch;

  // ---- the timeline: forward op by op, then backward in reverse ----
  auto consider = [&](int64_t acts, int64_t grads, int64_t flight, bool backward, const std::string& name) {
    const int64_t live = fixed + acts + grads + flight;
    if (live <= e.peak) return;
    e.peak = live;
    e.peak_activations = acts;
    e.peak_gradients = grads;
    e.peak_in_flight = flight;
    e.peak_in_backward = backward;
    e.peak_at = (backward ? "backward, " : "forward, ") + name;
  };
  std::vector<int64_t> saved_before(ops.size() + 1, 0);
  for (size_t i = 0; i < ops.size(); ++i) {
    saved_before[i + 1] = saved_before[i] + ops[i].mem.saved_bytes;
    // The previous step's gradients are dropped only after the forward.
    consider(saved_before[i + 1], e.gradients, ops[i].cuda_scratch, false, ops[i].mem.name);
  }
  int64_t grads_back = 0;
  for (size_t j = ops.size(); j-- > 0;) {
    const StepOp& op = ops[j];
    const int64_t acts = saved_before[j] + op.extra_bytes;
    const int64_t grads = grads_back + op.param_bytes;
    // During the kernel: the gradients in and out, the pending one and the scratch; after it, a merge adds the
    // input gradient to the pending one into a third tensor of that size.
    const int64_t during = op.grad_out + op.grad_in + op.pending + op.cuda_scratch;
    const int64_t merging = op.merges ? op.grad_out + 2 * op.grad_in + op.pending : 0;
    consider(acts, grads, std::max(during, merging), true, op.mem.name);
    grads_back = grads;
  }

  if (spec.cuda_graph) {
    int64_t three = 0;
    for (size_t i = 0; i < ops.size(); ++i) {
      int64_t sum = 0;
      for (size_t j = i >= 2 ? i - 2 : 0; j <= i; ++j) sum += ops[j].out_bytes;
      three = std::max(three, sum);
    }
    e.evaluation = three + e.workspace;
    e.peak += e.evaluation;
  }
  for (const auto& op : ops) e.ops.push_back(op.mem);
  return e;
}

int64_t dataset_bytes(int64_t examples, int64_t rows, int64_t cols) {
  return examples * (rows * cols + static_cast<int64_t>(sizeof(int32_t)) * (1 + 4));
}

MemoryFit check_step_memory(nn::Module& model, const StepSpec& spec, int64_t available) {
  check_spec(spec);
  const Trace trace = trace_forward(model, spec.input);  // once: the bisection relabels its batch
  MemoryFit f;
  f.estimate = estimate_step_memory(model, trace, spec);
  f.needed = with_headroom(f.estimate.peak);
  f.available = available;
  f.fits = f.needed <= available;
  auto fits_with = [&](int64_t batch) {
    StepSpec s = spec;
    s.input[0] = batch;
    return with_headroom(estimate_step_memory(model, with_batch(trace, batch), s).peak) <= available;
  };
  if (f.fits) {
    f.largest_batch = spec.input[0];  // at least: larger batches are not searched
  } else {
    int64_t lo = 0, hi = spec.input[0];  // fits_with(lo) (or lo == 0), !fits_with(hi)
    while (hi - lo > 1) {
      const int64_t mid = lo + (hi - lo) / 2;
      (fits_with(mid) ? lo : hi) = mid;
    }
    f.largest_batch = lo;
  }
  f.message = fmt::format("memory: {}; needs {} with 15% for the process beside its tensors; available {} on {}",
                          describe(f.estimate), format_bytes(f.needed), format_bytes(available), spec.device.str());
  if (!f.fits) {
    f.message += ": does not fit. ";
    if (f.largest_batch > 0)
      f.message +=
          fmt::format("The largest batch that fits is {0} (--batch-size {0}), or lower --resize.", f.largest_batch);
    else
      f.message += "Not even a batch of 1 fits: lower --resize or choose a smaller model.";
  }
  return f;
}

namespace {

std::string read_text(const char* path) {
  std::ifstream in(path);
  if (!in) return "";
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

// "MemAvailable:   23456789 kB" -> bytes; -1 if absent.
int64_t meminfo_field(const std::string& meminfo, const std::string& key) {
  std::istringstream lines(meminfo);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.compare(0, key.size() + 1, key + ":") != 0) continue;
    long long kb = -1;
    if (std::sscanf(line.c_str() + key.size() + 1, "%lld", &kb) == 1 && kb >= 0) return kb * 1024;
  }
  return -1;
}

// A number, or -1 ("max", empty, malformed).
int64_t parse_count(const std::string& text) {
  long long v = -1;
  char rest = 0;
  if (std::sscanf(text.c_str(), "%lld%c", &v, &rest) >= 1 && v >= 0 && (rest == 0 || rest == '\n')) return v;
  return -1;
}

}  // namespace

int64_t available_host_memory(const std::string& meminfo, const std::string& cgroup_max,
                              const std::string& cgroup_current, std::string* source) {
  const int64_t avail = meminfo_field(meminfo, "MemAvailable");
  ENGINE_CHECK(avail >= 0, "available memory: /proc/meminfo has no MemAvailable line");
  int64_t result = avail;
  std::string from = "MemAvailable";
  const int64_t limit = parse_count(cgroup_max), used = parse_count(cgroup_current);
  if (limit >= 0) {
    const int64_t left = std::max<int64_t>(0, limit - std::max<int64_t>(0, used));
    if (left < result) result = left, from = "cgroup memory.max less memory.current";
  }
  if (source) *source = from;
  return result;
}

int64_t available_memory(engine::Device device, std::string* source) {
  if (device.is_cuda()) {
#if ENGINE_HAVE_CUDA
    if (source) *source = "cudaMemGetInfo free";
    return engine::cuda_free_memory(device);
#else
    engine::fail("available_memory: " + device.str() + " asked for, but this engine was built without CUDA");
#endif
  }
  return available_host_memory(read_text("/proc/meminfo"), read_text("/sys/fs/cgroup/memory.max"),
                               read_text("/sys/fs/cgroup/memory.current"), source);
}

std::string format_bytes(int64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (u < 4 && (v >= 1024 || v <= -1024)) v /= 1024, ++u;
  return u == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", v, units[u]);
}

std::string describe(const MemoryEstimate& e) {
  return fmt::format(
             "estimated peak {} per step (at {}): parameters {}, gradients {}, momentum {}, BN buffers {}, "
             "activations {} of {} saved, in flight {}, conv scratch {}, data {}",
             format_bytes(e.peak), e.peak_at, format_bytes(e.parameters), format_bytes(e.peak_gradients),
             format_bytes(e.momentum), format_bytes(e.buffers), format_bytes(e.peak_activations),
             format_bytes(e.activations), format_bytes(e.peak_in_flight), format_bytes(e.workspace),
             format_bytes(e.data)) +
         (e.evaluation ? fmt::format(", evaluation beside the CUDA graph's pool {}", format_bytes(e.evaluation)) : "");
}

}  // namespace models
