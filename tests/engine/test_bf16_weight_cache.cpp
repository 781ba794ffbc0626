// The cached bf16 copy of each float32 weight under mixed precision (engine/nn/layers.h param_for_input): SGD
// refreshes it in its update kernel, every other in-place writer of a parameter bumps the storage's version so
// that the next forward recasts, and training with the cache is bit for bit training without it.
#include <catch2/catch.hpp>
#include <cstring>

#include "apps/common/trainer.h"
#include "engine/autograd.h"
#include "engine/checkpoint.h"
#include "engine/nn/layers.h"
#include "engine/ops.h"
#include "engine/optim/ema.h"
#include "engine/optim/sgd.h"
#include "engine/random.h"
#include "models/registry.h"
#include "tests/app/app_test_util.h"
#include "tests/gradcheck.h"

using namespace engine;

namespace {

// Sets the cache switch for a scope and puts the default (on) back, also when a REQUIRE throws.
struct CacheSwitch {
  explicit CacheSwitch(bool on) { nn::set_bf16_weight_cache(on); }
  ~CacheSwitch() { nn::set_bf16_weight_cache(true); }
};

std::vector<uint16_t> bits_of(const Tensor& t) {
  REQUIRE(t.dtype() == DType::bf16);
  const Tensor host = t.detach().to(Device::cpu());
  std::vector<uint16_t> out(host.numel());
  std::memcpy(out.data(), host.raw_data(), out.size() * sizeof(uint16_t));
  return out;
}

std::vector<uint32_t> f32_bits_of(const Tensor& t) {
  REQUIRE(t.dtype() == DType::f32);
  const Tensor host = t.detach().to(Device::cpu());
  std::vector<uint32_t> out(host.numel());
  std::memcpy(out.data(), host.raw_data(), out.size() * sizeof(uint32_t));
  return out;
}

Tensor cached_copy(const Tensor& p) { return Tensor(p.impl()->bf16_copy); }

// Every cast parameter's copy exists, is current and equals cast(master, bf16) bit for bit (permuted for a
// channels-last conv weight's copy).
void require_copies_current(const std::vector<Tensor>& params) {
  for (const Tensor& p : params) {
    const Tensor c = cached_copy(p);
    REQUIRE(c.defined());
    REQUIRE(p.impl()->bf16_copy_version == p.version());
    const Tensor cast_master = p.detach().to(DType::bf16);
    REQUIRE(bits_of(c) == bits_of(p.impl()->bf16_copy_channels_last ? to_channels_last(cast_master) : cast_master));
  }
}

// conv (weight and bias) -> BN -> ReLU -> flatten -> linear (weight and bias): names "0.*" and "4.*".
std::shared_ptr<nn::Sequential> small_net(uint64_t seed) {
  default_generator().seed(seed);
  auto net = std::make_shared<nn::Sequential>();
  net->push_back(std::make_shared<nn::Conv2d>(1, 4, 3, 1, 1));
  net->push_back(std::make_shared<nn::BatchNorm2d>(4));
  net->push_back(std::make_shared<nn::ReLU>());
  net->push_back(std::make_shared<nn::Flatten>());
  net->push_back(std::make_shared<nn::Linear>(4 * 6 * 6, 10));
  return net;
}

std::vector<Tensor> small_cast_params(const nn::Module& net) {
  nn::Module& m = const_cast<nn::Module&>(net);
  return {m.find("0.weight"), m.find("0.bias"), m.find("4.weight"), m.find("4.bias")};
}

struct Batch {
  Tensor x, y;
};
Batch batch(int n, int hw, uint64_t seed) {
  Generator g(seed);
  std::vector<double> labels(n);
  for (int i = 0; i < n; ++i) labels[i] = (i * 7 + 3) % 10;
  return {randn({n, 1, hw, hw}, DType::f32, Device::cpu(), g), Tensor::from_vector(labels, {n}, DType::i32)};
}

double train_step(nn::Module& net, optim::SGD& opt, const Batch& b) {
  Tensor loss = cross_entropy(nn::forward_logits(net, b.x, DType::bf16), b.y);
  opt.zero_grad();
  loss.backward();
  opt.step();
  return loss.item();
}

// The logits of a bf16 forward, once with the cache and once with fresh casts: equal bit for bit when every copy
// the cached forward read was current.
void require_forward_uses_current_copies(nn::Module& net, const Batch& b) {
  NoGradGuard no_grad;
  const std::vector<uint32_t> cached = f32_bits_of(nn::forward_logits(net, b.x, DType::bf16));
  std::vector<uint32_t> fresh;
  {
    CacheSwitch off(false);
    fresh = f32_bits_of(nn::forward_logits(net, b.x, DType::bf16));
  }
  REQUIRE(cached == fresh);
}

}  // namespace

TEST_CASE("bf16 weight cache: after SGD steps every copy is cast(master) and no forward casts again", "[mixed][sgd]") {
  const Layout layout = GENERATE(Layout::nchw, Layout::nhwc);
  INFO(layout_name(layout));
  auto net = small_net(1);
  net->train();
  net->set_layout(layout);  // nhwc: the conv weight's copy is kept [OC, KH, KW, C] and SGD writes it permuted
  const auto params = small_cast_params(*net);
  optim::SGD opt(net->parameters(), {0.05, 0.9, 1e-3, true});
  const Batch b = batch(6, 6, 2);
  const int64_t before = nn::bf16_weight_casts();
  train_step(*net, opt, b);
  // The first forward made the four copies; the step refreshed them in the update kernel.
  REQUIRE(nn::bf16_weight_casts() - before == 4);
  REQUIRE(params[0].impl()->bf16_copy_channels_last == (layout == Layout::nhwc));
  require_copies_current(params);
  std::vector<const void*> storage;
  for (const Tensor& p : params) storage.push_back(cached_copy(p).raw_data());
  for (int step = 0; step < 4; ++step) {
    const int64_t n0 = nn::bf16_weight_casts();
    const std::vector<uint32_t> master_before = f32_bits_of(params[0]);
    train_step(*net, opt, b);
    REQUIRE(f32_bits_of(params[0]) != master_before);  // the weights did move
    REQUIRE(nn::bf16_weight_casts() == n0);            // and the forward read the copies SGD wrote
    require_copies_current(params);
    for (size_t i = 0; i < params.size(); ++i) REQUIRE(cached_copy(params[i]).raw_data() == storage[i]);
  }
  // Forwards without a step in between reuse the copies too; with the cache off each one casts all four.
  const int64_t n1 = nn::bf16_weight_casts();
  require_forward_uses_current_copies(*net, b);
  REQUIRE(nn::bf16_weight_casts() - n1 == 4);  // the cache-off forward only
}

TEST_CASE("CUDA: the SGD kernel writes the bf16 copies equal to cast(master), as the CPU's", "[cuda][mixed][sgd]") {
  SKIP_WITHOUT_CUDA();
  const Layout layout = GENERATE(Layout::nchw, Layout::nhwc);  // nhwc: the kernel writes the conv copy permuted
  INFO(layout_name(layout));
  auto net = small_net(7), ref = small_net(7);
  net->to(Device::cuda());
  net->train();
  ref->train();
  net->set_layout(layout);
  ref->set_layout(layout);
  optim::SGD opt(net->parameters(), {0.05, 0.9, 1e-3, false}), ref_opt(ref->parameters(), {0.05, 0.9, 1e-3, false});
  const Batch b = batch(6, 6, 8);
  const Batch bc{b.x.to(Device::cuda()), b.y.to(Device::cuda())};
  for (int step = 0; step < 3; ++step) {
    const int64_t n0 = nn::bf16_weight_casts();
    train_step(*net, opt, bc);
    if (step > 0) REQUIRE(nn::bf16_weight_casts() == n0);
    require_copies_current(small_cast_params(*net));
    train_step(*ref, ref_opt, b);
  }
  // Not bitwise across devices (cuBLAS sums in another order), but the CUDA copies are rounded from the CUDA
  // masters (checked above), and both runs stay close.
  const auto got = small_cast_params(*net), want = small_cast_params(*ref);
  for (size_t i = 0; i < got.size(); ++i)
    REQUIRE(testing::close_ratio(got[i].to(Device::cpu()), want[i], 1e-2, 1e-2) <= 1);
}

// small_net's conv has one input channel, for which the channels-last order is the identity: resnet20's 16-64
// channel convolutions are where a permuted write can be wrong.
TEST_CASE("bf16 weight cache: SGD writes channels-last copies of many-channel conv weights, CPU and CUDA",
          "[mixed][sgd][nhwc]") {
  std::vector<Device> devices{Device::cpu()};
  if (engine::cuda_available()) devices.push_back(Device::cuda());
  for (const Device d : devices) {
    INFO(d.str());
    default_generator().seed(13);
    auto net = models::create("resnet20");
    net->to(d);
    net->train();
    net->set_layout(Layout::nhwc);
    optim::SGD opt(net->parameters(), {0.1, 0.9, 5e-4, true});
    const Batch b = batch(4, 8, 14);
    const Batch bd{b.x.to(d), b.y.to(d)};
    for (int step = 0; step < 2; ++step) train_step(*net, opt, bd);
    std::vector<Tensor> convs;
    for (const auto& [name, p] : net->named_parameters())
      if (p.dim() == 4) convs.push_back(p);
    REQUIRE(convs.size() == 19);
    for (const Tensor& p : convs) REQUIRE(p.impl()->bf16_copy_channels_last);
    require_copies_current(convs);
  }
}

TEST_CASE("bf16 weight cache: the returned weight is cast's, differentiable to the float32 master", "[mixed]") {
  nn::Linear lin(3, 2);
  const Tensor x = cast(Tensor::from_vector({1, 2, 3, -1, 0.5, 4}, {2, 3}, DType::f32), DType::bf16);
  const Tensor w = nn::param_for_input(lin.weight, x);
  REQUIRE(w.dtype() == DType::bf16);
  REQUIRE(w.grad_fn());
  REQUIRE(w.grad_fn()->name == "cast");
  REQUIRE_FALSE(w.same(cached_copy(lin.weight)));  // its own handle: the node is not on the cache
  REQUIRE(w.raw_data() == cached_copy(lin.weight).raw_data());
  const Tensor g = Tensor::from_vector({0.5, -2, 0x1p-20, 7, 1, 3}, {2, 3}, DType::bf16);
  run_backward(w, g);
  REQUIRE(lin.weight.grad().dtype() == DType::f32);
  REQUIRE(lin.weight.grad().to_vector() == g.to_vector());
  // A float32 input, or a weight that is itself computed (not a leaf), is not cached.
  REQUIRE(nn::param_for_input(lin.weight, x.to(DType::f32)).same(lin.weight));
  const Tensor computed = scale(lin.weight, 2.0);
  const int64_t n0 = nn::bf16_weight_casts();
  nn::param_for_input(computed, x);
  nn::param_for_input(computed, x);
  REQUIRE(nn::bf16_weight_casts() - n0 == 2);
  REQUIRE_FALSE(computed.impl()->bf16_copy);
  // detach() is a new handle without the copy.
  REQUIRE_FALSE(lin.weight.detach().impl()->bf16_copy);
  REQUIRE_THROWS_WITH(cast_precomputed(lin.weight, lin.weight), Catch::Contains("no conversion of"));
}

TEST_CASE("bf16 weight cache: every other writer of a parameter makes the next forward recast", "[mixed]") {
  auto net = small_net(3);
  net->train();
  optim::SGD opt(net->parameters(), {0.05, 0.9, 0.0, false});
  const Batch b = batch(6, 6, 4);
  train_step(*net, opt, b);
  require_copies_current(small_cast_params(*net));
  Tensor w = net->find("0.weight"), lw = net->find("4.weight");
  const void* w_copy_at = cached_copy(w).raw_data();
  // Each writer, then: the next forward reads copies equal to the new masters (a stale copy fails both checks),
  // refreshed where they were (a captured CUDA graph keeps the copy's address).
  auto check = [&](const char* writer) {
    INFO("after " << writer);
    require_forward_uses_current_copies(*net, b);
    require_copies_current(small_cast_params(*net));
    REQUIRE(cached_copy(w).raw_data() == w_copy_at);
  };
  w.fill_(0.125);
  check("fill_");
  w.copy_(Tensor::full(w.shape(), -0.375));
  check("copy_");
  uniform_(lw, -0.2, 0.2);
  check("uniform_");
  normal_(w, 0.0, 0.3);
  check("normal_");
  app::xavier_uniform_init(*net, default_generator());
  check("xavier_uniform_init");
  const double v = 0.0625;
  std::vector<float> ones(lw.numel(), static_cast<float>(v));
  copy_from_host(*lw.impl()->storage, ones.data(), ones.size() * sizeof(float));
  check("copy_from_host");
  {
    apptest::TempDir dir;
    auto other = small_net(99);
    save_checkpoint(dir / "c.safetensors", *other, nullptr, {});
    load_checkpoint(dir / "c.safetensors", *net);
    REQUIRE(f32_bits_of(w) == f32_bits_of(other->find("0.weight")));
    check("load_checkpoint");
  }
  // A write after the forward that made the copy and before the step: the step rewrites the (stale) copy whole
  // from the new weights, so the next forward reads a current copy without casting.
  {
    Tensor loss = cross_entropy(nn::forward_logits(*net, b.x, DType::bf16), b.y);
    opt.zero_grad();
    loss.backward();
    w.fill_(0.5);
    opt.step();
    const int64_t n0 = nn::bf16_weight_casts();
    check("fill_ between forward and step");
    REQUIRE(nn::bf16_weight_casts() - n0 == 4);  // the cache-off forward of check() only
  }
  net->to(DType::f64);
  net->to(DType::f32);
  w_copy_at = nullptr;  // new handles: a new copy
  optim::SGD moved(net->parameters(), {0.05, 0.9, 0.0, false});
  train_step(*net, moved, b);
  w = net->find("0.weight");
  w_copy_at = cached_copy(w).raw_data();
  check("Module::to and a step of the new optimizer");
}

TEST_CASE("bf16 weight cache: the EMA's update, swap and restore leave no stale copy", "[mixed][ema]") {
  auto net = small_net(5);
  net->train();
  optim::SGD opt(net->parameters(), {0.05, 0.9, 0.0, false});
  optim::ModelEma ema(*net, 0.5);
  const Batch b = batch(6, 6, 6);
  for (int round = 0; round < 3; ++round) {
    INFO("round " << round);
    train_step(*net, opt, b);
    ema.update(*net);
    net->eval();
    {
      optim::EmaScope scope(&ema, *net);  // the averages in the model's slots: their copies, made or reused
      require_forward_uses_current_copies(*net, b);
      require_copies_current(small_cast_params(*net));
    }
    // Restored: the masters' copies again, as the step left them.
    require_copies_current(small_cast_params(*net));
    require_forward_uses_current_copies(*net, b);
    net->train();
  }
}

TEST_CASE("bf16 weight cache: the averages' copies are remade at each swap, even after a write the host did not see",
          "[mixed][ema][graphs]") {
  // A replayed CUDA graph updates the averages on the device and bumps no version on the host; here a raw write
  // behind the tensors' back stands in for it.
  auto net = small_net(5);
  net->eval();
  optim::ModelEma ema(*net, 0.5);
  const Batch b = batch(6, 6, 6);
  {
    optim::EmaScope scope(&ema, *net);
    require_forward_uses_current_copies(*net, b);  // the averages get copies here
  }
  for (const auto& [name, t] : ema.tensors())
    if (t.dtype() == DType::f32) {
      float* p = t.data<float>();
      for (int64_t i = 0; i < t.numel(); ++i) p[i] = 0.25f * p[i] + 0.125f;  // no bump_version()
    }
  optim::EmaScope scope(&ema, *net);
  require_forward_uses_current_copies(*net, b);
  require_copies_current(small_cast_params(*net));
}

TEST_CASE("bf16 weight cache: 3 training steps give the same losses and weights bit for bit with and without it",
          "[mixed][sgd][models]") {
  // nhwc: the convolutions' copies are channels last, written permuted by SGD, against a cast and a permute per
  // forward without the cache.
  const Layout layout = GENERATE(Layout::nchw, Layout::nhwc);
  INFO(layout_name(layout));
  auto run = [layout](bool cache) {
    CacheSwitch sw(cache);
    default_generator().seed(11);
    auto net = models::create("resnet20");
    net->train();
    net->set_layout(layout);
    optim::SGD opt(net->parameters(), {0.1, 0.9, 5e-4, true});
    const Batch b = batch(8, 12, 12);
    std::vector<double> losses;
    for (int step = 0; step < 3; ++step) {
      opt.set_lr(0.1 / (step + 1));
      losses.push_back(train_step(*net, opt, b));
    }
    std::vector<std::vector<uint32_t>> weights;
    for (const Tensor& p : net->parameters()) weights.push_back(f32_bits_of(p));
    for (const Tensor& m : opt.momentum_buffers()) weights.push_back(f32_bits_of(m));
    return std::pair{losses, weights};
  };
  const int64_t n0 = nn::bf16_weight_casts();
  const auto with = run(true);
  const int64_t cached_casts = nn::bf16_weight_casts() - n0;
  const auto without = run(false);
  const int64_t fresh_casts = nn::bf16_weight_casts() - n0 - cached_casts;
  REQUIRE(with.first == without.first);
  REQUIRE(with.second == without.second);
  // resnet20: 19 convolutions without bias and a linear layer with one: 21 copies made once, against 3 x 21 casts.
  REQUIRE(cached_casts == 21);
  REQUIRE(fresh_casts == 3 * 21);
}
