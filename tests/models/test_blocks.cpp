// Residual blocks: shapes, names, shortcut kinds, and float64 gradient checks through whole blocks (train-mode
// BN, ReLU, convolutions, the shortcut and the join) with respect to the input and every parameter.
#include <catch2/catch.hpp>

#include "models/blocks.h"
#include "tests/gradcheck.h"

using namespace engine;
using models::BasicBlock;
using models::Bottleneck;
using models::ShortcutKind;

namespace {

std::vector<std::string> param_names(const nn::Module& m) {
  std::vector<std::string> out;
  for (auto& [n, t] : m.named_parameters()) out.push_back(n);
  return out;
}

// Gradient of the block's output with respect to x and all parameters, in float64; BN in training mode.
void check_block_gradients(nn::Module& block, const Shape& in_shape, uint64_t seed) {
  block.to(DType::f64);
  block.train();
  // Non-trivial BN affine parameters, so their gradients are exercised away from gamma = 1, beta = 0.
  for (auto& [name, p] : block.named_parameters())
    if (p.dim() == 1) p.copy_(testing::rand_leaf(p.shape(), seed + p.numel()).detach());
  Tensor x = testing::rand_leaf(in_shape, seed);
  std::vector<Tensor> wrt{x};
  for (auto& p : block.parameters()) wrt.push_back(p);
  REQUIRE_GRADCHECK(testing::gradcheck([&] { return block.forward(x); }, wrt));
}

}  // namespace

TEST_CASE("BasicBlock: identity, projection and option-A shortcuts", "[models][blocks]") {
  BasicBlock same(8, 8, 1, ShortcutKind::projection);
  REQUIRE(!same.downsample);  // shape kept: identity, no parameters
  REQUIRE(param_names(same) ==
          std::vector<std::string>{"conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight", "bn2.weight", "bn2.bias"});
  BasicBlock down(8, 16, 2, ShortcutKind::projection);
  REQUIRE(down.downsample);
  auto names = param_names(down);
  REQUIRE(names.size() == 9);
  REQUIRE(names[6] == "downsample.0.weight");
  REQUIRE(names[8] == "downsample.1.bias");
  REQUIRE(down.downsample->num_parameters() == 8 * 16 + 2 * 16);  // 1x1 conv without bias + BN
  BasicBlock a(8, 16, 2, ShortcutKind::zero_pad);
  REQUIRE(!a.downsample);
  REQUIRE(a.num_parameters() == 16 * 8 * 9 + 16 * 16 * 9 + 2 * 2 * 16);  // two convs and two BNs, nothing else
  Tensor y = a.forward(Tensor::full({2, 8, 9, 9}, 0.5));
  REQUIRE(y.shape() == Shape{2, 16, 5, 5});
  REQUIRE_THROWS_WITH(BasicBlock(16, 8, 1, ShortcutKind::zero_pad), Catch::Contains("cannot reduce 16 channels"));
}

TEST_CASE("Bottleneck: expansion 4 and where the stride goes", "[models][blocks]") {
  Bottleneck v15(16, 4, 2, ShortcutKind::projection, false), v1(16, 4, 2, ShortcutKind::projection, true);
  REQUIRE(v15.out_channels == 16);
  REQUIRE(v15.conv1->stride == 1);
  REQUIRE(v15.conv2->stride == 2);
  REQUIRE(v1.conv1->stride == 2);
  REQUIRE(v1.conv2->stride == 1);
  REQUIRE(v15.downsample);  // stride 2 changes the shape even though the width is kept
  REQUIRE(v15.num_parameters() == v1.num_parameters());
  for (auto* b : {&v15, &v1}) REQUIRE(b->forward(Tensor::full({1, 16, 7, 7}, 0.1)).shape() == Shape{1, 16, 4, 4});
  Bottleneck keep(16, 4, 1, ShortcutKind::projection, false);
  REQUIRE(!keep.downsample);
  REQUIRE(param_names(keep).back() == "bn3.bias");
}

TEST_CASE("blocks: gradient check in float64", "[models][blocks][gradcheck]") {
  SECTION("BasicBlock with identity shortcut") {
    BasicBlock b(3, 3, 1, ShortcutKind::projection);
    check_block_gradients(b, {2, 3, 4, 4}, 21);
  }
  SECTION("BasicBlock with projection shortcut") {
    BasicBlock b(2, 4, 2, ShortcutKind::projection);
    check_block_gradients(b, {2, 2, 5, 5}, 22);
  }
  SECTION("BasicBlock with option-A shortcut (stride 2, zero channels)") {
    BasicBlock b(2, 4, 2, ShortcutKind::zero_pad);
    check_block_gradients(b, {2, 2, 5, 5}, 23);
  }
  SECTION("plain block (no shortcut)") {
    BasicBlock b(2, 4, 2, ShortcutKind::none);
    check_block_gradients(b, {2, 2, 5, 5}, 24);
  }
  SECTION("Bottleneck with identity shortcut") {
    Bottleneck b(8, 2, 1, ShortcutKind::projection, false);
    check_block_gradients(b, {2, 8, 3, 3}, 25);
  }
  SECTION("Bottleneck with projection, stride on the 3x3") {
    Bottleneck b(4, 2, 2, ShortcutKind::projection, false);
    check_block_gradients(b, {2, 4, 5, 5}, 26);
  }
  SECTION("Bottleneck with projection, stride on the first 1x1") {
    Bottleneck b(4, 2, 2, ShortcutKind::projection, true);
    check_block_gradients(b, {2, 4, 5, 5}, 27);
  }
}
