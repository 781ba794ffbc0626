// Residual blocks: shapes, names, shortcut kinds, and float64 gradient checks through whole blocks (train-mode
// BN, ReLU, convolutions, the shortcut and the join) with respect to the input and every parameter.
#include <catch2/catch.hpp>
#include <functional>

#include "engine/ops.h"
#include "models/blocks.h"
#include "tests/gradcheck.h"
#include "tests/ops/op_table.h"

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

// The shortcut as ResidualBlock::join takes it, written out.
Tensor shortcut_of(const models::ResidualBlock& b, const Tensor& x) {
  if (b.downsample) return (*b.downsample)(x);
  if (b.stride == 1 && b.in_channels == b.out_channels) return x;
  return shortcut_a(x, b.out_channels, b.stride, (b.out_channels - b.in_channels) / 2);
}

// The end of a block unfused: relu(add(bn(main), shortcut)), or relu(bn(main)) without a shortcut.
Tensor unfused_join(models::ResidualBlock& b, nn::BatchNorm2d& bn, const Tensor& main, const Tensor& x) {
  if (b.kind == ShortcutKind::none) return relu(bn(main));
  return relu(add(bn(main), shortcut_of(b, x)));
}

// The output, then the gradients of x and of every parameter for a fixed random output gradient.
std::vector<Tensor> forward_backward(nn::Module& block, const Tensor& x_in,
                                     const std::function<Tensor(const Tensor&)>& forward) {
  Tensor x = x_in.clone();
  x.set_requires_grad(true);
  for (auto& p : block.parameters()) p.zero_grad();
  const Tensor y = forward(x);
  Generator gen(5);
  run_backward(y, randn(y.shape(), DType::f64, Device::cpu(), gen).to(y.dtype()));
  std::vector<Tensor> out{y.detach(), x.grad()};
  for (auto& p : block.parameters()) out.push_back(p.grad());
  return out;
}

// The fused join (batch_norm2d_add_relu) against the composition it replaces, in training mode. Tolerances as
// tests/ops/op_table.h derives them (8 k u (1 + |ref|)): forward, the fused op rounds bn(x) + r once where the
// composition rounds bn(x) and then the sum, k = 2 roundings. Backward: both mask with their output > 0 (the same
// signs: no output of these random inputs lies within rounding of 0), so the same masked gradient enters the
// same BN backward and everything above it; K = the longest sum behind one gradient (N*H*W in BN's and the
// weight gradients' reductions) bounds what a rounding there could move.
void check_fused_join(models::ResidualBlock& block, const Shape& in_shape,
                      const std::function<Tensor(const Tensor&)>& unfused, uint64_t seed) {
  for (DType dt : {DType::f32, DType::f64}) {
    INFO(dtype_name(dt));
    block.to(dt);
    block.train();
    for (auto& [name, p] : block.named_parameters())
      if (p.dim() == 1) p.copy_(testing::rand_leaf(p.shape(), seed + p.numel(), dt).detach());
    const Tensor x = testing::rand_leaf(in_shape, seed, dt).detach();
    const std::vector<Tensor> fused = forward_backward(block, x, [&](const Tensor& t) { return block.forward(t); });
    const std::vector<Tensor> plain = forward_backward(block, x, unfused);
    const Shape& out = fused[0].shape();
    const int64_t K = std::max(out[0] * out[2] * out[3], in_shape[0] * in_shape[2] * in_shape[3]);
    const double fwd = testing::optable::reference_tol(dt, 2), bwd = testing::optable::reference_tol(dt, K);
    testing::optable::require_all_close({fused[0]}, {plain[0]}, {fwd, fwd}, testing::NonFinite::fail);
    testing::optable::require_all_close(std::vector<Tensor>(fused.begin() + 1, fused.end()),
                                        std::vector<Tensor>(plain.begin() + 1, plain.end()), {bwd, bwd},
                                        testing::NonFinite::fail);
  }
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

TEST_CASE("blocks: the fused join equals relu(add(bn(main), shortcut)) forward and backward", "[models][blocks]") {
  auto basic = [](BasicBlock& b) {
    return [&b](const Tensor& x) { return unfused_join(b, *b.bn2, (*b.conv2)(b.bn1->forward_relu((*b.conv1)(x))), x); };
  };
  auto bottleneck = [](Bottleneck& b) {
    return [&b](const Tensor& x) {
      const Tensor y = b.bn2->forward_relu((*b.conv2)(b.bn1->forward_relu((*b.conv1)(x))));
      return unfused_join(b, *b.bn3, (*b.conv3)(y), x);
    };
  };
  SECTION("BasicBlock, identity") {
    BasicBlock b(3, 3, 1, ShortcutKind::projection);
    check_fused_join(b, {2, 3, 5, 5}, basic(b), 31);
  }
  SECTION("BasicBlock, projection") {
    BasicBlock b(2, 4, 2, ShortcutKind::projection);
    check_fused_join(b, {3, 2, 7, 7}, basic(b), 32);
  }
  SECTION("BasicBlock, option A") {
    BasicBlock b(2, 4, 2, ShortcutKind::zero_pad);
    check_fused_join(b, {2, 2, 5, 5}, basic(b), 33);
  }
  SECTION("plain block") {
    BasicBlock b(2, 4, 1, ShortcutKind::none);
    check_fused_join(b, {2, 2, 5, 5}, basic(b), 34);
  }
  SECTION("Bottleneck, identity") {
    Bottleneck b(8, 2, 1, ShortcutKind::projection, false);
    check_fused_join(b, {2, 8, 5, 3}, bottleneck(b), 35);
  }
  SECTION("Bottleneck, projection") {
    Bottleneck b(4, 2, 2, ShortcutKind::projection, false);
    check_fused_join(b, {2, 4, 6, 6}, bottleneck(b), 36);
  }
}
