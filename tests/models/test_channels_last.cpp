// Channels last through whole models (nn::Module::set_layout): the same network with the same weights gives the
// NCHW run's logits, parameter gradients and batch-norm running statistics, in training and in eval, for each kind
// of ResNet (option-A shortcuts, projection shortcuts with the stem's max pool, bottlenecks, no shortcuts).
#include <catch2/catch.hpp>
#include <string>

#include "engine/device.h"
#include "engine/nn/layers.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "models/registry.h"
#include "tests/compare.h"
#include "tests/gradcheck.h"

using namespace engine;

namespace {

std::shared_ptr<nn::Module> build(const std::string& name, DType dtype) {
  default_generator().seed(3);  // the same weights for both layouts
  auto m = models::create(name, models::ModelConfig{});
  m->to(dtype);
  return m;
}

struct Pass {
  Tensor logits, eval_logits;
  nn::NamedTensors grads, buffers;
};

// One training forward + backward (which also moves the running statistics), then an eval forward; the results
// on the CPU.
Pass run(nn::Module& model, const Tensor& x, const Tensor& labels) {
  Pass p;
  model.train();
  const Tensor logits = nn::forward_logits(model, x, x.dtype());
  cross_entropy(logits, labels).backward();
  p.logits = logits.detach().to(Device::cpu());
  for (const auto& [name, t] : model.named_parameters()) p.grads.emplace_back(name, t.grad().to(Device::cpu()));
  for (const auto& [name, t] : model.named_buffers()) p.buffers.emplace_back(name, t.to(Device::cpu()));
  model.eval();
  p.eval_logits = nn::forward_logits(model, x, x.dtype()).detach().to(Device::cpu());
  return p;
}

void require_same(const Pass& got, const Pass& want, double tol, bool grads = true) {
  REQUIRE_OK(testing::close(got.logits, want.logits, tol, tol));
  REQUIRE_OK(testing::close(got.eval_logits, want.eval_logits, tol, tol));
  REQUIRE(got.grads.size() == want.grads.size());
  for (size_t i = 0; grads && i < want.grads.size(); ++i) {
    INFO("gradient of " << want.grads[i].first);
    REQUIRE(got.grads[i].second.shape() == want.grads[i].second.shape());  // torchvision's shapes in both
    REQUIRE_OK(testing::close(got.grads[i].second, want.grads[i].second, tol, tol));
  }
  for (size_t i = 0; i < want.buffers.size(); ++i) {
    INFO(want.buffers[i].first);
    REQUIRE_OK(testing::close(got.buffers[i].second, want.buffers[i].second, tol, tol));
  }
}

const char* const kNets[] = {"resnet20", "plain20", "resnet18", "resnet50"};

// 64 px, batch 4: the ImageNet nets' last stage sees 2x2 maps, 16 values per channel for batch norm (at 1x1 and
// batch 2 its statistics of two values make the gradients ill-conditioned: 1e3 and round-off amplified).
Tensor input(DType dtype, Device device) {
  Generator g(7);
  return randn({4, 1, 64, 64}, dtype, Device::cpu(), g).to(device);
}
Tensor labels(Device device) { return Tensor::from_vector({3, 8, 0, 5}, {4}, DType::i32, device); }

}  // namespace

TEST_CASE("channels last: every kind of ResNet gives the NCHW logits, gradients and statistics", "[models][nhwc]") {
  // float64: the two layouts differ only in the order of their sums (the GEMMs over K = C*KH*KW up to 4608 terms,
  // batch norm over N*H*W), each at most K u ~ 5e-13 relative with u = 2^-53; through 50 layers and BN's division by
  // small standard deviations that grows by a few orders, still below 1e-10, while a wrong index or a missed
  // permute changes values by O(1).
  const double tol = 1e-10;
  for (const char* name : kNets) {
    DYNAMIC_SECTION(name) {
      auto nchw = build(name, DType::f64), nhwc = build(name, DType::f64);
      nhwc->set_layout(Layout::nhwc);
      REQUIRE(nhwc->layout() == Layout::nhwc);
      const Tensor x = input(DType::f64, Device::cpu());
      require_same(run(*nhwc, x, labels(Device::cpu())), run(*nchw, x, labels(Device::cpu())), tol);
    }
  }
}

TEST_CASE("channels last cuda: whole models NHWC on the GPU against NCHW on the CPU, and with cuDNN",
          "[models][nhwc][cuda]") {
  SKIP_WITHOUT_CUDA();
  const ConvEngine engine = conv_engine();
  struct Restore {
    ConvEngine e;
    ~Restore() {
      set_conv_engine(e);
      set_allow_tf32(false);
    }
  } restore{engine};
  set_allow_tf32(false);
  for (const char* name : kNets) {
    DYNAMIC_SECTION(name) {
      // Our kernels in float64 against the CPU's NCHW: the same order-of-sums bound as the test above.
      set_conv_engine(ConvEngine::native);
      auto cpu = build(name, DType::f64), gpu = build(name, DType::f64);
      gpu->to(Device::cuda());
      gpu->set_layout(Layout::nhwc);
      require_same(run(*gpu, input(DType::f64, Device::cuda()), labels(Device::cuda())),
                   run(*cpu, input(DType::f64, Device::cpu()), labels(Device::cpu())), 1e-10);
      if (cudnn_compiled()) {
        // cuDNN's NHWC (float32 and bf16 only) against its NCHW, both on the GPU in float32 with TF32 off: the same
        // bound with float's u = 2^-24 instead of 2^-53 (2^29 times larger) is ~1e-4; 1e-3 leaves a factor 10.
        // Not for the gradients of plain20 and resnet50: at this input their float32 gradients are ill-conditioned
        // (on the CPU, float32 NCHW against float64 NCHW, the stem's weight gradient was 9.8 and 675 times 1e-3
        // off, NHWC against NCHW in float32 8.2 and 536 times; resnet20 and resnet18 stay under 1e-3 of it), so
        // there the float64 comparison above pins the gradients and this one the logits and statistics.
        const bool grads = std::string(name) == "resnet20" || std::string(name) == "resnet18";
        set_conv_engine(ConvEngine::cudnn);
        auto a = build(name, DType::f32), b = build(name, DType::f32);
        a->to(Device::cuda());
        b->to(Device::cuda());
        b->set_layout(Layout::nhwc);
        const Tensor x = input(DType::f32, Device::cuda());
        require_same(run(*b, x, labels(Device::cuda())), run(*a, x, labels(Device::cuda())), 1e-3, grads);
      }
    }
  }
}

TEST_CASE("channels last: bf16 mixed precision through a model stays within bf16 of NCHW", "[models][nhwc][mixed]") {
  // bf16 activations: both layouts compute in float and round each stored activation to bf16 (u = 2^-8); they
  // differ in the float order of the sums, so a value near a rounding boundary lands one bf16 ulp apart and that
  // difference travels on through ~20 layers. Logits of O(1) then agree to a few bf16 ulps: 2^-4 absolute and
  // relative is about 16 ulps; a wrong index gives O(1) differences (the float64 test above pins the indices).
  const double tol = 0x1p-4;
  Generator g(8);
  const Tensor x = randn({4, 1, 28, 28}, DType::f32, Device::cpu(), g);
  auto nchw = build("resnet20", DType::f32), nhwc = build("resnet20", DType::f32);
  nhwc->set_layout(Layout::nhwc);
  nchw->eval();
  nhwc->eval();
  const Tensor a = nn::forward_logits(*nchw, x, DType::bf16), b = nn::forward_logits(*nhwc, x, DType::bf16);
  REQUIRE(b.dtype() == DType::f32);
  REQUIRE_OK(testing::close(b, a, tol, tol));
}

TEST_CASE("channels last: a layer given NCHW input says what it expected", "[models][nhwc]") {
  auto m = build("resnet20", DType::f32);
  m->set_layout(Layout::nhwc);
  Generator g(9);
  const Tensor x = randn({2, 3, 8, 8}, DType::f32, Device::cpu(), g);  // 3 channels into a 1-channel stem
  REQUIRE_THROWS_WITH((*m)(x), Catch::Contains("conv2d: input has 8 channels but weight expects 1") &&
                                   Catch::Contains("channels last"));
}
