#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "engine/checkpoint.h"
#include "engine/json.h"
#include "engine/nn/layers.h"
#include "engine/ops.h"
#include "engine/optim/sgd.h"
#include "engine/random.h"
#include "models/registry.h"
#include "tests/app/app_test_util.h"

using namespace engine;

namespace {
std::shared_ptr<nn::Sequential> small_net(uint64_t seed) {
  default_generator().seed(seed);
  return std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Conv2d>(1, 3, 3, 1, 1), std::make_shared<nn::BatchNorm2d>(3), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(3 * 5 * 5, 4)});
}

// One SGD step so that BN running statistics and momentum buffers hold something.
void train_step(nn::Module& m, optim::SGD& opt, uint64_t seed) {
  Generator g(seed);
  Tensor x = randn({2, 1, 5, 5}, DType::f32, Device::cpu(), g);
  Tensor y = Tensor::from_vector({1, 3}, {2}, DType::i32);
  opt.zero_grad();
  cross_entropy(m.forward(x), y).backward();
  opt.step();
}
}  // namespace

TEST_CASE("safetensors: round trip of tensors and metadata, 8-byte aligned header, atomic write", "[checkpoint]") {
  apptest::TempDir dir;
  SafetensorsFile f;
  f.metadata = {{"epoch", "3"}, {"note", "quote \" and\nnewline"}};
  f.tensors.emplace_back("a.weight", StoredTensor::from(Tensor::from_vector({1, -2, 3.5, 4}, {2, 2}, DType::f32)));
  f.tensors.emplace_back("b", StoredTensor::from(Tensor::from_vector({0.25}, {1}, DType::f64)));
  f.tensors.emplace_back("labels", StoredTensor::from(Tensor::from_vector({7, 8, 9}, {3}, DType::i32)));
  write_safetensors(dir / "x.safetensors", f);
  for (const auto& entry : std::filesystem::directory_iterator(dir.str()))
    REQUIRE(entry.path().filename() == "x.safetensors");  // no temporary left behind

  std::ifstream in(dir / "x.safetensors", std::ios::binary);
  unsigned char len[8];
  in.read(reinterpret_cast<char*>(len), 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
  REQUIRE(n % 8 == 0);
  std::string header(n, '\0');
  in.read(header.data(), n);
  json::Value h = json::parse(header);
  REQUIRE(h.find("a.weight")->find("dtype")->as_string() == "F32");
  REQUIRE(h.find("a.weight")->find("data_offsets")->as_array()[1].as_int() == 16);

  SafetensorsFile g = read_safetensors(dir / "x.safetensors");
  REQUIRE(g.metadata == f.metadata);
  REQUIRE(g.tensors.size() == 3);
  REQUIRE(g.find("a.weight")->to_tensor().to_vector() == std::vector<double>{1, -2, 3.5, 4});
  REQUIRE(g.find("a.weight")->shape == Shape{2, 2});
  REQUIRE(g.find("b")->to_tensor().dtype() == DType::f64);
  REQUIRE(g.find("labels")->to_tensor().to_vector() == std::vector<double>{7, 8, 9});
  REQUIRE(read_safetensors_metadata(dir / "x.safetensors") == f.metadata);
}

TEST_CASE("safetensors: damaged files are rejected naming the file", "[checkpoint]") {
  apptest::TempDir dir;
  SafetensorsFile f;
  f.tensors.emplace_back("w", StoredTensor::from(Tensor::from_vector({1, 2, 3, 4}, {4}, DType::f32)));
  const std::string path = dir / "w.safetensors";
  write_safetensors(path, f);
  const auto size = std::filesystem::file_size(path);

  std::filesystem::copy_file(path, dir / "cut.safetensors");
  std::filesystem::resize_file(dir / "cut.safetensors", size - 4);
  REQUIRE_THROWS_WITH(read_safetensors(dir / "cut.safetensors"),
                      Catch::Contains("cut.safetensors") && Catch::Contains("outside the 12 data bytes"));
  std::filesystem::resize_file(dir / "cut.safetensors", 5);
  REQUIRE_THROWS_WITH(read_safetensors(dir / "cut.safetensors"), Catch::Contains("too short"));

  std::ofstream(dir / "junk.safetensors", std::ios::binary) << std::string("\x08\0\0\0\0\0\0\0{\"w\":[}  ", 16);
  REQUIRE_THROWS_WITH(read_safetensors(dir / "junk.safetensors"), Catch::Contains("bad safetensors header"));
  REQUIRE_THROWS_WITH(read_safetensors(dir / "missing.safetensors"), Catch::Contains("cannot open"));

  f.tensors.emplace_back("w", f.tensors[0].second);
  REQUIRE_THROWS_WITH(write_safetensors(dir / "dup.safetensors", f), Catch::Contains("appears twice"));
}

TEST_CASE("checkpoint: a model saved and loaded into a fresh one gives identical outputs", "[checkpoint]") {
  apptest::TempDir dir;
  auto net = small_net(1);
  optim::SGD opt(net->parameters(), {0.1, 0.9, 1e-4, false});
  train_step(*net, opt, 5);
  train_step(*net, opt, 6);
  save_checkpoint(dir / "c.safetensors", *net, &opt, {{"epoch", "2"}}, 2);

  SafetensorsFile f = read_safetensors(dir / "c.safetensors");
  for (const char* name : {"0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var", "4.weight",
                           "4.bias", "optimizer.momentum.0.weight", "optimizer.momentum.4.bias"})
    REQUIRE(f.find(name));
  REQUIRE(f.find("1.num_batches_tracked")->dtype == "I64");
  REQUIRE(f.find("1.num_batches_tracked")->bytes[0] == 2);

  auto fresh = small_net(2);
  optim::SGD fresh_opt(fresh->parameters(), {0.1, 0.9, 1e-4, false});
  Metadata meta = load_checkpoint(dir / "c.safetensors", *fresh, &fresh_opt);
  REQUIRE(meta.at("epoch") == "2");
  Generator g(9);
  Tensor x = randn({3, 1, 5, 5}, DType::f32, Device::cpu(), g);
  net->eval();
  fresh->eval();
  REQUIRE(fresh->forward(x).to_vector() == net->forward(x).to_vector());
  for (size_t i = 0; i < opt.momentum_buffers().size(); ++i)
    REQUIRE(fresh_opt.momentum_buffers()[i].to_vector() == opt.momentum_buffers()[i].to_vector());
  // The next step is the same too.
  net->train();
  fresh->train();
  train_step(*net, opt, 7);
  train_step(*fresh, fresh_opt, 7);
  REQUIRE(fresh->find("4.weight").to_vector() == net->find("4.weight").to_vector());
}

TEST_CASE("checkpoint: another model's file is refused with the names and shapes", "[checkpoint]") {
  apptest::TempDir dir;
  auto net = small_net(1);
  save_checkpoint(dir / "c.safetensors", *net, nullptr, {{"model", "small"}});
  default_generator().seed(3);
  auto wider = std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Conv2d>(1, 5, 3, 1, 1), std::make_shared<nn::BatchNorm2d>(5)});
  REQUIRE_THROWS_WITH(load_checkpoint(dir / "c.safetensors", *wider),
                      Catch::Contains("'0.weight' has shape [3, 1, 3, 3] but the model's is [5, 1, 3, 3]"));
  auto deeper = small_net(1);
  deeper->push_back(std::make_shared<nn::Linear>(4, 2));
  REQUIRE_THROWS_WITH(load_checkpoint(dir / "c.safetensors", *deeper),
                      Catch::Contains("missing: 5.weight, 5.bias") && Catch::Contains("model 'small'"));
  auto shallower = std::make_shared<nn::Sequential>(
      std::vector<std::shared_ptr<nn::Module>>{std::make_shared<nn::Conv2d>(1, 3, 3, 1, 1)});
  REQUIRE_THROWS_WITH(load_checkpoint(dir / "c.safetensors", *shallower),
                      Catch::Contains("do not belong to this model") && Catch::Contains("1.running_mean"));
}

TEST_CASE("checkpoint: resnet20 is saved under torchvision-style names", "[checkpoint][models]") {
  apptest::TempDir dir;
  default_generator().seed(0);
  auto net = models::create("resnet20");
  save_checkpoint(dir / "r.safetensors", *net, nullptr, {}, 0);
  SafetensorsFile f = read_safetensors(dir / "r.safetensors");
  for (const char* name : {"conv1.weight", "bn1.weight", "bn1.running_var", "bn1.num_batches_tracked",
                           "layer1.0.conv1.weight", "layer3.2.bn2.running_mean", "fc.weight", "fc.bias"}) {
    INFO(name);
    REQUIRE(f.find(name));
  }
  default_generator().seed(1);
  auto fresh = models::create("resnet20");
  load_checkpoint(dir / "r.safetensors", *fresh);
  REQUIRE(fresh->find("layer2.1.conv2.weight").to_vector() == net->find("layer2.1.conv2.weight").to_vector());
}
