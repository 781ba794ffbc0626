// Golden test against PyTorch (llm.c's test_gpt2 idea): tests/golden/make_golden.py ran torchvision's resnet18
// and resnet50 (1-channel stem, 10 classes) and a PyTorch CIFAR resnet20 for one training step in float64 and
// stored logits, loss, BN buffers after the step and gradients (see the script). Here we build the same nets
// from the registry, fill them with the same generated weights (by name), run the same step and compare.
//
// Tolerances, per tensor, with `scale` = max |reference| over the whole tensor:
//  float64 run: |ours - ref| <= 2^-23 |ref| + 1e-9 scale. The reference is a float64 result rounded to float32
//               (relative error <= 2^-24, so one float32 ulp of margin); our float64 round-off (~1e-16, grown
//               by depth and batch-norm over few values) is far below 1e-9 of the scale.
//  float32 run: |ours - ref| <= 1e-4 |ref| + 1e-4 scale. Float32 unit round-off is u = 2^-24 = 6e-8; dot
//               products of K <= 4608 terms typically err by sqrt(K) u ~ 4e-6 of their scale, compounded over
//               ~20 layers forward and back: ~1e-4. PyTorch's own float32 run of the same step stays within
//               5e-6 of its float64 run for resnet18/resnet20 (stored as pt32err.* in the files).
//  resnet50 is compared in float64 only: there PyTorch's own float32 gradients differ from its float64 ones by
//  up to 20% (pt32err), because ReLUs near 0 flip under float32 noise in layer4, where each channel has only
//  8 positions (2 images x 2x2), so one flipped mask changes a weight gradient by ~1/8. That is a property of
//  the problem, not of either implementation, and float64 is what settles the architecture's equivalence.
//  bf16 mixed precision (float32 weights, activations and layer operands in bf16): an elementwise bound says
//  little at these tiny batches, where PyTorch's own CPU autocast(bf16) step differs from its float64 step by
//  20-50% of a gradient tensor's largest element (ptbf16err.* in the files, made by the script). So the check is
//  against PyTorch, as llm.c checks its bf16 kernels against a reference with a bf16-sized tolerance: for the
//  logits and every gradient, max |ours - ref| / max |ref| over the compared elements is at most twice PyTorch's
//  bf16 error on the same elements plus 2^-7 (one bf16 ulp of the scale). Twice, because we also round batch
//  norm's outputs and the residual sums to bf16, which CPU autocast keeps in float32.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <string>

#include "engine/nn/layers.h"
#include "engine/ops.h"
#include "models/registry.h"
#include "tests/compare.h"
#include "tests/gradcheck.h"
#include "tests/models/golden_file.h"

using namespace engine;

namespace {

// ---- the generator of make_golden.py (fnv1a64 of the name seeds splitmix64; see generated() there) ----
uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001B3ull;
  return h;
}

uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Values in [-1, 1), exact in double: 2 * (z >> 11) * 2^-53 - 1.
double uniform_at(uint64_t seed, uint64_t i) {
  return 2.0 * (static_cast<double>(splitmix64(seed + i) >> 11) * 0x1.0p-53) - 1.0;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Float32-rounded values (as doubles) for the tensor `name` of `shape`; the same rule as the script.
std::vector<double> generated_values(const std::string& name, const Shape& shape) {
  const uint64_t seed = fnv1a64(name);
  const int64_t n = numel_of(shape);
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) {
    const double u = uniform_at(seed, static_cast<uint64_t>(i));
    double x = 0;
    if (shape.size() == 4) {
      x = std::sqrt(6.0 / static_cast<double>(shape[1] * shape[2] * shape[3])) * u;
    } else if (shape.size() == 2) {
      x = (1.0 / std::sqrt(static_cast<double>(shape[1]))) * u;
    } else if (name.rfind("fc.", 0) == 0) {
      x = 0.1 * u;
    } else if (ends_with(name, ".weight")) {
      x = 1.0 + 0.2 * u;
    } else if (ends_with(name, ".bias")) {
      x = 0.2 * u;
    } else if (ends_with(name, ".running_mean")) {
      x = 0.1 * u;
    } else if (ends_with(name, ".running_var")) {
      x = 1.0 + 0.25 * (u + 1.0);
    } else {
      FAIL("no generator rule for " << name);
    }
    v[i] = static_cast<double>(static_cast<float>(x));
  }
  return v;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t p = s.find(sep, start);
    out.push_back(s.substr(start, p == std::string::npos ? std::string::npos : p - start));
    if (p == std::string::npos) return out;
    start = p + 1;
  }
}

struct Tolerance {
  double rtol, scaled_atol;
};

// |ours - ref| <= rtol |ref| + scaled_atol * scale for every element; NaN or Inf anywhere fails.
testing::Comparison within(const std::vector<double>& ours, const std::vector<double>& ref, double scale,
                           Tolerance tol) {
  return testing::compare(ours, ref, [&](size_t i) { return tol.rtol * std::abs(ref[i]) + tol.scaled_atol * scale; });
}

// The worst of one kind of check over the model's tensors, with the tensor's name.
struct Worst {
  testing::Comparison c;
  std::string name;
  bool any = false;
  void add(const testing::Comparison& next, const std::string& tensor) {
    if (!any || testing::worse_than(next, c)) c = next, name = tensor, any = true;
  }
  testing::Comparison result() const {  // c, its report naming the tensor
    testing::Comparison r = c;
    r.report = any ? name + ": " + c.report : "nothing compared";
    return r;
  }
};

double max_rel(const std::vector<double>& ours, const std::vector<double>& ref) {  // +inf for NaN or Inf
  double worst = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    const double d = std::abs(ours[i] - ref[i]);
    if (!std::isfinite(d)) return INFINITY;
    worst = std::max(worst, d);
  }
  return worst / testing::max_abs(ref);
}

// The bf16 check of the header: each tensor's error against PyTorch's bf16 error on the same elements.
void check_bf16_against_pytorch(const testing::GoldenFile& golden, engine::nn::Module& model, const Tensor& logits,
                                const std::vector<std::vector<double>>& picked_grads) {
  const double slack = 0x1p-7;
  const double ours_logits = max_rel(logits.to_vector(), golden.at("logits").values);
  const double torch_logits = golden.at("ptbf16err.logits").values[0];
  INFO("logits: ours " << ours_logits << ", PyTorch bf16 " << torch_logits);
  CHECK(ours_logits <= 2 * torch_logits + slack);
  const auto& torch_grads = golden.at("ptbf16err.grads").values;
  size_t i = 0;
  double worst_ratio = 0;
  std::string worst;
  for (auto& [name, p] : model.named_parameters()) {
    const double ours = max_rel(picked_grads[i], golden.at("grad." + name).values), torch = torch_grads[i];
    const double ratio = ours / (2 * torch + slack);
    if (!(ratio <= worst_ratio))
      worst_ratio = ratio, worst = name + ": ours " + std::to_string(ours) + ", PyTorch bf16 " + std::to_string(torch);
    ++i;
  }
  INFO("worst gradient against its bound (1 = at the bound): " << worst_ratio << " (" << worst << ")");
  CHECK(worst_ratio <= 1);
}

void check_golden(const std::string& model_name, DType dtype, Tolerance tol, Device device = Device::cpu(),
                  DType activations = DType::f32) {
  const bool bf16 = activations == DType::bf16;  // mixed precision: float32 weights (dtype), bf16 activations
  // ENGINE_SOURCE_DIR in the environment overrides the build's source path (a bundle run on another machine).
  const char* src = std::getenv("ENGINE_SOURCE_DIR");
  const auto golden =
      testing::read_golden(std::string(src ? src : ENGINE_SOURCE_DIR) + "/tests/golden/" + model_name + ".safetensors");
  REQUIRE(golden.metadata.at("model") == model_name);
  const int64_t samples = std::stoll(golden.metadata.at("samples"));
  const int64_t sample_stride = std::stoll(golden.metadata.at("sample_stride"));

  models::ModelConfig cfg;  // 1 input channel, 10 classes, torchvision's bottleneck stride: as the script
  auto model = models::create(model_name, cfg);
  model->to(dtype);
  model->train();

  // Names and their order are torchvision's (parameters() order, then buffers without num_batches_tracked).
  std::vector<std::string> our_params, our_buffers;
  for (auto& [n, t] : model->named_parameters()) our_params.push_back(n);
  for (auto& [n, t] : model->named_buffers()) our_buffers.push_back(n);
  REQUIRE(our_params == split(golden.metadata.at("param_order"), ','));
  REQUIRE(our_buffers == split(golden.metadata.at("buffer_order"), ','));

  // Same weights: generated here by the script's rule; the stored sums prove both generators agree.
  auto fill = [&](const std::string& name, Tensor& t) {
    std::vector<double> v = generated_values(name, t.shape());
    double sum = 0, sumsq = 0;
    for (double x : v) sum += x, sumsq += x * x;
    const auto& stat = golden.at("weightstat." + name).values;
    INFO(name << ": generated sum " << sum << " vs " << stat[0] << ", sum of squares " << sumsq << " vs " << stat[1]);
    REQUIRE(std::abs(sum - stat[0]) <= 1e-10 * std::sqrt(sumsq * static_cast<double>(v.size())));
    REQUIRE(std::abs(sumsq - stat[1]) <= 1e-10 * sumsq);
    t.copy_(Tensor::from_vector(v, t.shape(), dtype));
  };
  for (auto& [n, t] : model->named_parameters()) fill(n, model->find(n));
  for (auto& [n, t] : model->named_buffers()) fill(n, model->find(n));
  model->to(device);

  const auto& gx = golden.at("input");
  const auto& gy = golden.at("labels");
  Tensor x = Tensor::from_vector(gx.values, gx.shape, dtype).to(device);
  Tensor y = Tensor::from_vector(gy.values, gy.shape, DType::i32).to(device);
  Tensor logits = bf16 ? engine::nn::forward_logits(*model, x, activations) : model->forward(x);
  Tensor loss = cross_entropy(logits, y);
  loss.backward();
  if (bf16) {
    std::vector<std::vector<double>> picked_grads;
    for (auto& [name, p] : model->named_parameters()) {
      REQUIRE(p.grad().defined());
      picked_grads.push_back(testing::golden_samples(p.grad().to_vector(), samples, sample_stride));
    }
    return check_bf16_against_pytorch(golden, *model, logits, picked_grads);
  }

  const auto& ref_logits = golden.at("logits").values;
  const double logit_scale = testing::max_abs(ref_logits);
  const testing::Comparison r_logits = within(logits.to_vector(), ref_logits, logit_scale, tol);
  const double ref_loss = golden.at("loss").values[0];
  const testing::Comparison r_loss = testing::compare(
      {loss.item()}, {ref_loss}, [&](size_t) { return tol.rtol * ref_loss + tol.scaled_atol * logit_scale; });

  // Gradients: the sampled elements, and sum / L2 norm / max |g| of the whole tensor (a NaN or Inf anywhere in
  // the tensor makes its sum non-finite, so the statistics also guard the elements that are not sampled).
  Worst r_grad, r_stat;
  for (auto& [name, p] : model->named_parameters()) {
    INFO(name);
    REQUIRE(p.grad().defined());
    const std::vector<double> g = p.grad().to_vector();
    const auto& stat = golden.at("gradstat." + name).values;  // sum, norm, max |g|
    const int64_t n = static_cast<int64_t>(g.size());
    const std::vector<double> picked = testing::golden_samples(g, samples, sample_stride);
    r_grad.add(within(picked, golden.at("grad." + name).values, stat[2], tol), name);
    double sum = 0, sumsq = 0;
    for (double v : g) sum += v, sumsq += v * v;
    const double bound = tol.rtol + tol.scaled_atol;
    const std::vector<double> stat_tol{bound * std::sqrt(static_cast<double>(n)) * stat[1], bound * stat[1],
                                       bound * stat[2]};
    r_stat.add(testing::compare({sum, std::sqrt(sumsq), testing::max_abs(g)}, {stat[0], stat[1], stat[2]},
                                [&](size_t i) { return stat_tol[i]; }),
               name + " (elements: sum, norm, max |g|)");
  }

  // BN running statistics after the step (momentum 0.1, unbiased variance), as torch updates them.
  Worst r_buf;
  for (auto& [name, b] : model->named_buffers()) {
    const auto& ref = golden.at("after." + name).values;
    r_buf.add(within(b.to_vector(), ref, testing::max_abs(ref), tol), name);
  }

  INFO(model_name << " " << dtype_name(dtype) << " on " << device.str() << ": worst error / tolerance: logits "
                  << r_logits.worst << ", loss " << r_loss.worst << " (ours " << loss.item() << ", torch " << ref_loss
                  << "), gradient samples " << r_grad.c.worst << " (" << r_grad.name << "), gradient sum/norm/max "
                  << r_stat.c.worst << " (" << r_stat.name << "), running stats " << r_buf.c.worst << " (" << r_buf.name
                  << ")");
  CHECK_OK(r_logits);
  CHECK_OK(r_loss);
  CHECK_OK(r_grad.result());
  CHECK_OK(r_stat.result());
  CHECK_OK(r_buf.result());
}

const Tolerance kF64{0x1.0p-23, 1e-9};
const Tolerance kF32{1e-4, 1e-4};

}  // namespace

TEST_CASE("golden: resnet18 (torchvision) matches PyTorch in float64 and float32", "[models][golden]") {
  check_golden("resnet18", DType::f64, kF64);
  check_golden("resnet18", DType::f32, kF32);
}

TEST_CASE("golden: CIFAR resnet20 (option A) matches PyTorch in float64 and float32", "[models][golden]") {
  check_golden("resnet20", DType::f64, kF64);
  check_golden("resnet20", DType::f32, kF32);
}

TEST_CASE("golden: resnet18 and resnet20 in bf16 mixed precision are within twice PyTorch's autocast error",
          "[models][golden][bf16]") {
  check_golden("resnet18", DType::f32, kF32, Device::cpu(), DType::bf16);
  check_golden("resnet20", DType::f32, kF32, Device::cpu(), DType::bf16);
}

TEST_CASE("golden: resnet50 (torchvision v1.5 bottlenecks) matches PyTorch in float64", "[models][golden]") {
  check_golden("resnet50", DType::f64, kF64);
}

// The same step on the GPU: the whole model (every CUDA kernel, the caching allocator, the fused SGD aside)
// against PyTorch, not only op by op against our CPU. TF32 stays off (the default), so float32 keeps its bound.
TEST_CASE("golden on CUDA: resnet18, resnet20 and resnet50 match PyTorch with the native kernels",
          "[models][golden][cuda]") {
  SKIP_WITHOUT_CUDA();
  check_golden("resnet18", DType::f64, kF64, Device::cuda());
  check_golden("resnet18", DType::f32, kF32, Device::cuda());
  check_golden("resnet20", DType::f64, kF64, Device::cuda());
  check_golden("resnet20", DType::f32, kF32, Device::cuda());
  check_golden("resnet50", DType::f64, kF64, Device::cuda());
}

TEST_CASE("golden on CUDA: resnet18 and resnet20 match PyTorch through cuDNN", "[models][golden][cuda][cudnn]") {
  SKIP_WITHOUT_CUDA();
  if (!cudnn_compiled()) {
    WARN("SKIPPED: built without cuDNN");
    return;
  }
  struct Restore {
    ~Restore() {
      set_conv_engine(ConvEngine::native);
      set_batch_norm_engine(BatchNormEngine::native);
    }
  } restore;
  set_conv_engine(ConvEngine::cudnn);
  set_batch_norm_engine(BatchNormEngine::cudnn);
  check_golden("resnet18", DType::f32, kF32, Device::cuda());
  check_golden("resnet20", DType::f32, kF32, Device::cuda());
  check_golden("resnet18", DType::f64, kF64, Device::cuda());
}

TEST_CASE("golden: the generator reproduces the script's values bit for bit", "[models][golden]") {
  // Printed by make_golden.py's generated() (float.hex); a mismatch here points at the generator, not the model.
  REQUIRE(fnv1a64("a") == 0xAF63DC4C8601EC8Cull);  // the published FNV-1a 64 test vector
  REQUIRE(generated_values("fc.bias", {3}) == std::vector<double>{-0x1.24edc6p-8, -0x1.c1dea2p-5, -0x1.415aa2p-16});
  REQUIRE(generated_values("conv1.weight", {2, 1, 1, 2}) ==
          std::vector<double>{0x1.3fc896p-3, -0x1.790efcp+0, 0x1.97f308p+0, 0x1.30c8a4p+0});
}
