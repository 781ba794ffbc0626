// bench_models: whole-model training throughput. One step = forward, cross-entropy loss, backward, SGD update
// (momentum 0.9, weight decay 1e-4), on synthetic data already on the device. The first --warmup steps are not
// timed (allocator, cuBLAS and cuDNN warm-up); then --steps steps are timed one by one (CPU: steady clock;
// CUDA: events on the engine's stream, no host sync inside the step), and we report the median with min/max and
// quartiles, images per second, the achieved GFLOP/s (conv + linear FLOPs of the step, from
// benchmarks/resnet_shapes.h) and its share of the device peak, and the memory high-water mark.
// benchmarks/pytorch_reference.py prints the same columns and JSON keys for PyTorch; compare.py joins the two.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "apps/common/cli.h"
#include "apps/common/omp_env.h"
#include "benchmarks/bench_common.h"
#include "benchmarks/resnet_shapes.h"
#include "engine/nn/layers.h"
#include "engine/ops.h"
#include "engine/optim/sgd.h"
#include "engine/random.h"
#include "engine/step_graph.h"
#include "models/registry.h"

#if ENGINE_HAVE_CUDA
#include "kernels/cuda/runtime.h"
#endif

using namespace engine;

namespace {

struct Config {
  Device device;
  std::string model;
  int64_t batch, res;
  std::string engine;  // native | cudnn
  std::string math;    // fp32 | tf32 | bf16 (train_fmnist's --precision)
  std::string graphs;  // off | on (train_fmnist's --cuda-graphs)
  std::string layout;  // nchw | nhwc (train_fmnist's --layout)
  int warmup, steps;
  double peak_gflops;  // 0: no %peak column
};

// Resident set at start-up (no model yet): CPU peak memory is VmHWM minus this. Later configurations in the
// same process may reuse heap the earlier ones left behind; run one configuration per process for exact figures.
double g_base_rss_mb = 0;

bench::Record run(const Config& c) {
#if ENGINE_HAVE_CUDA
  if (c.device.is_cuda()) {
    set_conv_engine(parse_conv_engine(c.engine));
    kernels::cuda::set_allow_tf32(c.math == "tf32");
  }
#endif
  models::ModelConfig mc;
  mc.in_channels = 1;
  mc.num_classes = 10;
  default_generator().seed(0);
  auto model = models::create(c.model, mc);
  model->to(c.device);
  model->train(true);
  model->set_layout(parse_layout(c.layout));

  // The FLOPs come from a trace of this same model's forward (benchmarks/resnet_shapes.h).
  const bench::NetShapes shapes = bench::net_shapes(c.model, 1, c.res);

  optim::SgdOptions so;
  so.lr = 0.05;
  so.momentum = 0.9;
  so.weight_decay = 1e-4;
  optim::SGD opt(model->parameters(), so);

  Generator g(1);
  Tensor x = randn({c.batch, 1, c.res, c.res}, DType::f32, c.device, g);
  std::vector<double> lab(c.batch);
  for (int64_t i = 0; i < c.batch; ++i) lab[i] = static_cast<double>(i % 10);
  Tensor y = Tensor::from_vector(lab, {c.batch}, DType::i32, c.device);

  const DType act = c.math == "bf16" ? DType::bf16 : DType::f32;  // mixed precision as train_fmnist's
  // x and y live across steps, so the step can be captured as it stands (engine/step_graph.h).
  StepGraph graphs(c.graphs == "on", c.device);
  const StepGraph::Step body = [&] {
    Tensor logits = nn::forward_logits(*model, x, act);
    Tensor loss = cross_entropy(logits, y);
    opt.zero_grad();
    loss.backward();
    opt.step();
    return std::vector<Tensor>{loss.detach()};
  };
  auto step = [&] {
    graphs.run(body);
    const std::string notice = graphs.take_notice();
    if (!notice.empty() && !graphs.active()) fmt::print(stderr, "bench_models: {}\n", notice);
  };

  bench::TimingOptions to;
  // Under graphs the warm-up must cover StepGraph's two eager steps and the capture, so that only replays are timed.
  to.warmup = c.graphs == "on" ? std::max(c.warmup, 3) : c.warmup;
  to.repeat = c.steps;
  std::vector<double> ms;
  double peak_mb = 0;
  if (c.device.is_cuda()) {
#if ENGINE_HAVE_CUDA
    kernels::cuda::synchronize();
    kernels::cuda::reset_peak_stats();
    ms = bench::time_cuda(step, to);
    peak_mb = kernels::cuda::allocator_stats().peak_allocated_bytes / 1048576.0;
#endif
  } else {
    bench::reset_vm_hwm();
    ms = bench::time_cpu(step, to);
    peak_mb = bench::vm_hwm_mb() - g_base_rss_mb;
  }
  // "on" only when every timed step was a replay; "failed" when asked for but not possible (the notice said why).
  const std::string graph_state = c.graphs == "off" ? "off" : graphs.active() ? "on" : "failed";
  const bench::Stats s = bench::stats_of(ms);
  const double img_s = c.batch / (s.median / 1e3);
  const double gflop_img = shapes.step_flops() / 1e9;
  const double gflops = gflop_img * img_s;

  bench::Record r;
  r.s("impl", "ours")
      .s("device", c.device.is_cuda() ? "cuda" : "cpu")
      .s("model", c.model)
      .i("res", c.res)
      .i("batch", c.batch)
      .s("math", c.math)
      .s("graphs", graph_state)
      .s("layout", c.layout)
      .s("engine", c.device.is_cuda() ? c.engine : "native")
      .i("threads", bench::threads())
      .i("steps", c.steps)
      .f("step_ms", s.median, 1)
      .f("step_ms_min", s.min, 1)
      .f("step_ms_max", s.max, 1)
      .f("step_ms_q1", s.q1, 1)
      .f("step_ms_q3", s.q3, 1)
      .f("img_per_s", img_s, 1)
      .f("gflop_per_img", gflop_img, 3)
      .f("gflops", gflops, 1);
  if (c.peak_gflops > 0) r.f("pct_peak", 100.0 * gflops / c.peak_gflops, 1);
  r.f("peak_mem_mb", peak_mb, 0);
  return r;
}

const char* kDescription =
    "bench_models: examples/sec of a full training step (forward, loss, backward, SGD) per model, batch and\n"
    "resolution. Synthetic 1-channel inputs, 10 classes (the Fashion-MNIST setting).\n"
    "  CPU default : resnet18, batch 16, 28x28, 2 warm-up + 5 timed steps\n"
    "  CUDA default: resnet18,34,50,101,152,resnet20,56,110, batch 128, 96x96, engines native,cudnn,fastest, precision "
    "fp32,tf32,bf16";
const char* kExample = "example:\n  bench_models --device cpu --models resnet18 --batch 128 --res 28 --threads 2";

// "a,b" -> each item checked by `item`.
template <class T>
std::vector<T> list_of(const std::string& v, const std::function<T(const std::string&)>& item) {
  std::vector<T> out;
  for (const auto& s : app::split_list(v)) out.push_back(item(s));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  // Measure what the apps run: passive OpenMP workers with a bounded spin (see apps/common/omp_env.h), unless
  // the caller set OMP_WAIT_POLICY; the header line prints the policy in force.
  app::relaunch_with_passive_openmp(argv);
  // Defaults that depend on --device stay empty until it is known.
  std::string device = "cpu";
  std::optional<std::vector<std::string>> model_list, engine_list;
  std::optional<std::vector<int64_t>> batch_list, res_list;
  std::optional<std::vector<std::string>> math_list, graph_list, layout_list;
  std::optional<int64_t> warmup_opt, steps_opt;
  std::optional<double> peak_gflops;
  int64_t threads = 0;
  bool json = false;
  CLI::App cli{kDescription, "bench_models"};
  app::configure_cli(cli, "bench_models [options]", kExample);
  auto ints = [](const char* flag, int64_t lo, int64_t hi) {
    return std::function<int64_t(const std::string&)>(
        [flag, lo, hi](const std::string& s) { return app::parse_int(s, flag, lo, hi); });
  };
  app::add_option(cli, "device", "DEV", "cpu, cuda or cuda:N (default cpu).", [&](const std::string& v) {
    Device::parse(v);
    device = v;
  });
  app::add_option(cli, "models", "LIST", "Comma list of model names, e.g. resnet18,resnet50,resnet20.",
                  [&](const std::string& v) {
                    model_list = list_of<std::string>(
                        v, [](const std::string& s) { return app::parse_choice(s, "models", models::names()); });
                  });
  app::add_option(cli, "batch", "LIST", "Comma list of batch sizes (default CPU 16, CUDA 128).",
                  [&](const std::string& v) { batch_list = list_of(v, ints("batch", 2, 1 << 20)); });
  app::add_option(cli, "res", "LIST", "Comma list of input sizes (square), e.g. 28,96,224 (default CPU 28, CUDA 96).",
                  [&](const std::string& v) { res_list = list_of(v, ints("res", 8, 4096)); });
  app::add_option(cli, "engines", "LIST",
                  "CUDA conv engines: native,cudnn,fastest (default all three when cuDNN is compiled in).",
                  [&](const std::string& v) {
                    engine_list = list_of<std::string>(v, [](const std::string& s) {
                      return app::parse_choice(s, "engines", {"native", "cudnn", "fastest"});
                    });
                  });
  app::add_option(cli, "precision", "LIST",
                  "Comma list of fp32, tf32, bf16 (as train_fmnist --precision; default CPU fp32, CUDA all three).",
                  [&](const std::string& v) {
                    math_list = list_of<std::string>(v, [](const std::string& s) {
                      return app::parse_choice(s, "precision", {"fp32", "tf32", "bf16"});
                    });
                  });
  app::add_option(cli, "tf32", "LIST", "CUDA: comma list of 0/1, the older spelling of --precision fp32,tf32.",
                  [&](const std::string& v) {
                    math_list.emplace();
                    for (int64_t t : list_of(v, ints("tf32", 0, 1))) math_list->push_back(t ? "tf32" : "fp32");
                  });
  app::add_option(
      cli, "cuda-graphs", "LIST",
      "Comma list of off, on: replay the step as a CUDA graph (as train_fmnist --cuda-graphs; default off).",
      [&](const std::string& v) {
        graph_list = list_of<std::string>(v, [](const std::string& s) {
          return app::parse_choice(s, "cuda-graphs", {"off", "on"});
        });
      });
  app::add_option(cli, "layout", "LIST",
                  "Comma list of nchw, nhwc (channels last), as train_fmnist --layout (default nchw).",
                  [&](const std::string& v) {
                    layout_list = list_of<std::string>(v, [](const std::string& s) {
                      return app::parse_choice(s, "layout", {"nchw", "nhwc"});
                    });
                  });
  app::add_option(cli, "warmup", "N", "Untimed steps first (default CPU 2, CUDA 5; at least 3 with graphs on).",
                  [&](const std::string& v) { warmup_opt = app::parse_int(v, "warmup", 0, 1 << 20); });
  app::add_option(cli, "steps", "N", "Timed steps (default CPU 5, CUDA 20).",
                  [&](const std::string& v) { steps_opt = app::parse_int(v, "steps", 1, 1 << 20); });
  app::add_option(cli, "threads", "N", "CPU threads for OpenMP and OpenBLAS (default 0: OMP_NUM_THREADS or all cores).",
                  [&](const std::string& v) { threads = app::parse_int(v, "threads", 0, 1024); });
  app::add_option(
      cli, "peak-gflops", "GFLOPS",
      "Device peak for the %peak column (default CUDA: the GPU's datasheet FP32 / TF32 / BF16 by --precision).",
      [&](const std::string& v) { peak_gflops = app::parse_double(v, "peak-gflops", 0, 1e12); });
  app::add_option(cli, "json", "", "One JSON object per line instead of the table.",
                  [&](const std::string&) { json = true; });
  if (std::optional<int> done = app::parse_cli(cli, argc, argv)) return *done;
  try {
    g_base_rss_mb = bench::vm_rss_mb();
    const Device dev = Device::parse(device);
    const bool cuda = dev.is_cuda();
    if (cuda) {
      require_cuda("bench_models --device cuda");
      use_device(dev);  // the process's GPU: models, data and handles below live on it
    }
    bench::set_threads(static_cast<int>(threads));

    const auto model_names =
        model_list.value_or(cuda ? std::vector<std::string>{"resnet18", "resnet34", "resnet50", "resnet101",
                                                            "resnet152", "resnet20", "resnet56", "resnet110"}
                                 : std::vector<std::string>{"resnet18"});
    const auto batches = batch_list.value_or(std::vector<int64_t>{cuda ? 128 : 16});
    const auto resolutions = res_list.value_or(std::vector<int64_t>{cuda ? 96 : 28});
    std::vector<std::string> engines = {"native"};
    std::vector<std::string> maths = math_list.value_or(std::vector<std::string>{"fp32"});
    if (cuda) {
      engines = engine_list.value_or(cudnn_compiled() ? std::vector<std::string>{"native", "cudnn", "fastest"}
                                                      : std::vector<std::string>{"native"});
      maths = math_list.value_or(std::vector<std::string>{"fp32", "tf32", "bf16"});
    }
    const auto graph_modes = graph_list.value_or(std::vector<std::string>{"off"});
    const auto layouts = layout_list.value_or(std::vector<std::string>{"nchw"});
    const int warmup = static_cast<int>(warmup_opt.value_or(cuda ? 5 : 2));
    const int steps = static_cast<int>(steps_opt.value_or(cuda ? 20 : 5));

    std::vector<std::pair<std::string, std::string>> columns = {{"model", "model"},
                                                                {"res", "res"},
                                                                {"batch", "batch"},
                                                                {"math", "math"},
                                                                {"graphs", "graphs"},
                                                                {"layout", "layout"},
                                                                {"engine", "engine"},
                                                                {"threads", "thr"},
                                                                {"step_ms", "step ms (med)"},
                                                                {"step_ms_min", "min"},
                                                                {"step_ms_max", "max"},
                                                                {"img_per_s", "img/s"},
                                                                {"gflop_per_img", "GFLOP/img"},
                                                                {"gflops", "GFLOP/s"},
                                                                {"pct_peak", "%peak"},
                                                                {"peak_mem_mb", "peak MB"}};
    std::string devname = kernels::cpu::cpu_description();
#if ENGINE_HAVE_CUDA
    if (cuda) {
      cudaDeviceProp prop;
      BENCH_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev.index));
      devname = prop.name;
    }
#endif
    const bench::GpuPeaks* known = cuda ? bench::find_gpu_peaks(devname) : nullptr;
    const bool have_peak = peak_gflops || known;
    if (!have_peak)  // no peak known (CPU, or a GPU not in the table): no %peak column
      columns.erase(std::find_if(columns.begin(), columns.end(), [](const auto& c) { return c.first == "pct_peak"; }));
    bench::Output out(json, columns);
    out.note(engine::cat("ours (engine) on ", dev.str(), ": ", devname, ", ", bench::threads(),
                         " threads, load average ", bench::load_average(), ", ", bench::now_utc()));
    out.note(bench::thread_env());
    out.note(bench::blas_note());
    out.note(engine::cat("warm-up ", warmup, " steps, timed ", steps,
                         " steps; peak MB = ", cuda ? "caching-allocator peak" : "VmHWM minus RSS at start-up"));
    if (peak_gflops)
      out.note(fmt::format("%peak against the given {} GFLOP/s", *peak_gflops));
    else if (known)
      out.note(engine::cat("%peak against the ", known->label, " datasheet (dense): FP32 ", known->fp32_gflops,
                           " / TF32 ", known->tf32_gflops, " / BF16 ", known->bf16_gflops, " GFLOP/s"));
    else if (cuda)
      out.note(engine::cat("peak unknown for ", devname,
                           " (not in the table of benchmarks/bench_common.h): no %peak column; give --peak-gflops"));
    for (const auto& m : model_names)
      for (int64_t res : resolutions)
        for (int64_t b : batches)
          for (const auto& e : engines)
            for (const auto& math : maths)
              for (const auto& gr : graph_modes)
                for (const auto& lay : layouts) {
                  Config c{dev, m, b, res, e, math, gr, lay, warmup, steps, 0};
                  const double datasheet = !known           ? 0.0
                                           : math == "bf16" ? known->bf16_gflops
                                           : math == "tf32" ? known->tf32_gflops
                                                            : known->fp32_gflops;
                  c.peak_gflops = peak_gflops.value_or(datasheet);
                  out.add(run(c));
                }
    out.flush();
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_models: error: {}\n", e.what());
    return 1;
  }
}
