// The trace of a model's forward (models/trace.h): it is what the summary, the step-memory estimate and the
// benchmarks' layer shapes read, so these tests check that it follows the real forward, leaves the model as it
// was, and that a change to a block's forward() reaches all three readers.
#include <catch2/catch.hpp>

#include "benchmarks/resnet_shapes.h"
#include "engine/ops.h"
#include "models/memory.h"
#include "models/registry.h"
#include "models/resnet.h"
#include "models/summary.h"
#include "models/trace.h"

using namespace engine;

namespace {

// BasicBlock with its second conv and BN run twice: a change to forward() only, same parameters.
struct DeeperBlock : models::BasicBlock {
  using BasicBlock::BasicBlock;
  Tensor forward(const Tensor& x) override {
    Tensor y = bn1->forward_relu((*conv1)(x));
    y = bn2->forward_relu((*conv2)(y));
    return join((*conv2)(y), x);  // bn2 again, fused with the shortcut and the ReLU
  }
};

template <class Block>
std::shared_ptr<models::Network> small_net() {
  auto net = std::make_shared<models::Network>("small");
  net->add("conv1", models::make_conv(1, 8, 3, 1, 1));
  net->add("bn1", std::make_shared<nn::BatchNorm2d>(8));
  net->add("relu", std::make_shared<nn::ReLU>());
  auto stage = std::make_shared<nn::Sequential>();
  stage->push_back(std::make_shared<Block>(8, 8, 1, models::ShortcutKind::projection));
  net->add("layer1", stage);
  net->add("avgpool", std::make_shared<nn::AdaptiveAvgPool2d>(1, 1));
  net->add("flatten", std::make_shared<nn::Flatten>());
  net->add("fc", std::make_shared<nn::Linear>(8, 10));
  return net;
}

}  // namespace

TEST_CASE("trace: the ops of a real forward, attributed to their modules", "[models][trace]") {
  auto model = models::create("resnet20");
  const models::Trace t = models::trace_forward(*model, {3, 1, 28, 28});
  REQUIRE(t.input == Shape{3, 1, 28, 28});
  REQUIRE(t.output == Shape{3, 10});
  int depth = 0, convs = 0, adds = 0, joins = 0, stems = 0;
  for (const auto& o : t.ops) {
    depth += o.kind == models::TracedOpKind::begin ? 1 : o.kind == models::TracedOpKind::end ? -1 : 0;
    REQUIRE(depth >= 0);
    if (o.kind == models::TracedOpKind::begin || o.kind == models::TracedOpKind::end) continue;
    REQUIRE(o.module);
    if (o.kind == models::TracedOpKind::conv2d) {
      ++convs;
      REQUIRE(dynamic_cast<const nn::Conv2d*>(o.module));
    }
    adds += o.kind == models::TracedOpKind::add;
    if (o.kind == models::TracedOpKind::batch_norm_add_relu) {  // every block ends with bn2 fused with the join
      ++joins;
      REQUIRE(dynamic_cast<const nn::BatchNorm2d*>(o.module));
      REQUIRE(o.module->path().substr(o.module->path().size() - 4) == ".bn2");
    }
    stems += o.reads_input;
  }
  REQUIRE(depth == 0);
  REQUIRE(convs == 19);
  REQUIRE(adds == 0);
  REQUIRE(joins == 9);
  REQUIRE(stems == 1);
  REQUIRE(t.ops[1].module->path() == "conv1");
  REQUIRE(t.ops[2].reads_input);

  // Batch 3 is a batch-1 forward relabelled: a real train-mode forward at batch 3 gives the same output, and
  // MACs scale with the batch.
  REQUIRE(model->forward(Tensor::zeros({3, 1, 28, 28})).shape() == t.output);
  REQUIRE(t.macs() == 3 * models::trace_forward(*model, {1, 1, 28, 28}).macs());
  REQUIRE(models::with_batch(t, 5).ops[2].out == Shape{5, 16, 28, 28});

  // Any module is traced by its forward, not only the layers a shape rule knows.
  struct Odd : nn::Module {
    Tensor forward(const Tensor& x) override { return relu(add(x, x)); }
  } odd;
  const models::Trace o = models::trace_forward(odd, {2, 1, 3, 3});
  REQUIRE(o.ops.size() == 4);
  REQUIRE(o.ops[1].op == "add");
  REQUIRE(o.ops[2].kind == models::TracedOpKind::relu);
  REQUIRE(o.ops[2].module == &odd);
}

TEST_CASE("trace: the model is left as it was", "[models][trace]") {
  auto model = models::create("resnet20");
  model->train();
  auto* net = dynamic_cast<models::Network*>(model.get());
  REQUIRE(net);
  Tensor& rm = model->find("bn1.running_mean");
  rm.fill_(0.25);
  net->children()[1].second->eval();  // bn1 alone in eval mode
  models::trace_forward(*model, {2, 1, 28, 28});
  REQUIRE(rm.to(DType::f64).to_vector() == std::vector<double>(16, 0.25));
  REQUIRE(model->is_training());
  REQUIRE(!net->children()[1].second->is_training());
  REQUIRE(net->children()[3].second->is_training());
  REQUIRE(grad_enabled());
}

TEST_CASE("trace: changing a block's forward changes benchmark shapes, summary and memory estimate",
          "[models][trace]") {
  auto stock = small_net<models::BasicBlock>();
  auto deeper = small_net<DeeperBlock>();
  REQUIRE(stock->num_parameters() == deeper->num_parameters());

  const bench::NetShapes a = bench::net_shapes(*stock, 2, 8), b = bench::net_shapes(*deeper, 2, 8);
  REQUIRE(a.convs.size() == 3);
  REQUIRE(b.convs.size() == a.convs.size() + 1);
  REQUIRE(b.bns.size() == a.bns.size() + 1);
  REQUIRE(b.relus.size() == a.relus.size() + 1);
  REQUIRE(b.convs[3].key() == bench::ConvShape{2, 8, 8, 8, 8, 3, 1, 1}.key());
  REQUIRE(a.convs[0].first);
  REQUIRE(!a.convs[1].first);
  const double extra_macs = 2.0 * 8 * 8 * 8 * 8 * 9;
  REQUIRE(b.forward_flops() - a.forward_flops() == 2 * extra_macs);

  const models::Summary sa = models::summarize(*stock, {2, 1, 8, 8}), sb = models::summarize(*deeper, {2, 1, 8, 8});
  REQUIRE(sb.total_macs - sa.total_macs == static_cast<int64_t>(extra_macs));
  REQUIRE(2.0 * sa.total_macs == a.forward_flops());  // the benchmark and the summary count the same ops

  models::StepSpec spec;
  spec.input = {2, 1, 8, 8};
  const int64_t act = 2 * 8 * 8 * 8 * 4;  // one [2, 8, 8, 8] float32 activation
  // The extra conv's and BN's outputs, and BN's batch mean and inverse std.
  REQUIRE(models::estimate_step_memory(*deeper, spec).activations -
              models::estimate_step_memory(*stock, spec).activations ==
          2 * act + 2 * 8 * 4);
}

TEST_CASE("trace: the registry's benchmark shapes and the summary agree", "[models][trace]") {
  const bench::NetShapes ns = bench::net_shapes("resnet18", 4, 28);
  auto model = models::create("resnet18");
  const models::Summary s = models::summarize(*model, {4, 1, 28, 28});
  REQUIRE(ns.params == model->num_parameters());
  REQUIRE(ns.convs.size() == 20);  // 17 convs of Table 1's 18 layers (fc the 18th), plus 3 projections
  REQUIRE(ns.maxpools.size() == 1);
  REQUIRE(ns.adds.size() == 8);
  REQUIRE(ns.fc_in == 512);
  REQUIRE(ns.forward_flops() == 2.0 * s.total_macs);
}
