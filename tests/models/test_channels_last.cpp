// Channels last through whole models (nn::Module::set_layout): the same network with the same weights gives the
// NCHW run's logits, parameter gradients and batch-norm running statistics, in training and in eval, for each kind
// of ResNet (option-A shortcuts, projection shortcuts with the stem's max pool, bottlenecks, no shortcuts).
#include <catch2/catch.hpp>
#include <string>

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

// One training forward + backward (which also moves the running statistics), then an eval forward.
Pass run(nn::Module& model, const Tensor& x, const Tensor& labels) {
  Pass p;
  model.train();
  p.logits = nn::forward_logits(model, x, x.dtype());
  cross_entropy(p.logits, labels).backward();
  for (const auto& [name, t] : model.named_parameters()) p.grads.emplace_back(name, t.grad().clone());
  for (const auto& [name, t] : model.named_buffers()) p.buffers.emplace_back(name, t.clone());
  model.eval();
  p.eval_logits = nn::forward_logits(model, x, x.dtype());
  return p;
}

}  // namespace

TEST_CASE("channels last: every kind of ResNet gives the NCHW logits, gradients and statistics", "[models][nhwc]") {
  // float64: the two layouts differ only in the order of their sums (the GEMMs over K = C*KH*KW up to 4608 terms,
  // batch norm over N*H*W), each at most K u ~ 5e-13 relative with u = 2^-53; through 50 layers and BN's division by
  // small standard deviations that grows by a few orders, still below 1e-10, while a wrong index or a missed
  // permute changes values by O(1).
  const double tol = 1e-10;
  for (const std::string name : {"resnet20", "plain20", "resnet18", "resnet50"}) {
    DYNAMIC_SECTION(name) {
      // 64 px, batch 4: the ImageNet nets' last stage sees 2x2 maps, 16 values per channel for batch norm (at 1x1
      // and batch 2 its statistics of two values make the gradients ill-conditioned: 1e3 and round-off amplified).
      Generator g(7);
      const Tensor x = randn({4, 1, 64, 64}, DType::f64, Device::cpu(), g);
      const Tensor labels = Tensor::from_vector({3, 8, 0, 5}, {4}, DType::i32);
      auto nchw = build(name, DType::f64), nhwc = build(name, DType::f64);
      nhwc->set_layout(Layout::nhwc);
      REQUIRE(nhwc->layout() == Layout::nhwc);
      const Pass a = run(*nchw, x, labels), b = run(*nhwc, x, labels);
      REQUIRE_OK(testing::close(b.logits, a.logits, tol, tol));
      REQUIRE_OK(testing::close(b.eval_logits, a.eval_logits, tol, tol));
      REQUIRE(a.grads.size() == b.grads.size());
      for (size_t i = 0; i < a.grads.size(); ++i) {
        INFO("gradient of " << a.grads[i].first);
        REQUIRE(b.grads[i].second.shape() == a.grads[i].second.shape());  // torchvision's shapes in both
        REQUIRE_OK(testing::close(b.grads[i].second, a.grads[i].second, tol, tol));
      }
      for (size_t i = 0; i < a.buffers.size(); ++i) {
        INFO(a.buffers[i].first);
        REQUIRE_OK(testing::close(b.buffers[i].second, a.buffers[i].second, tol, tol));
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
