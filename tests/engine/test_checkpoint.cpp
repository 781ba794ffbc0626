#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/checkpoint.h"
#include "engine/json_strict.h"
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
  nlohmann::json h = parse_json(header);
  REQUIRE(h["a.weight"]["dtype"] == "F32");
  REQUIRE(h["a.weight"]["data_offsets"][1] == 16);

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

namespace {
// A safetensors file written byte by byte: the 8-byte little-endian header length, `header`, then `data`.
void write_raw(const std::string& path, const std::string& header, const std::string& data) {
  std::string len(8, '\0');
  for (int i = 0; i < 8; ++i) len[i] = static_cast<char>(static_cast<uint64_t>(header.size()) >> (8 * i));
  std::ofstream(path, std::ios::binary) << len << header << data;
}

// Every reader of a checkpoint path must refuse `path` with a message holding `problem` and the path;
// read_safetensors_metadata too unless the fault lies in the tensor entries, which it does not read.
enum class Fault { file, tensors };
void require_refused(const std::string& path, const std::string& problem, Fault fault = Fault::file) {
  auto net = small_net(1);
  using Catch::Contains;
  REQUIRE_THROWS_AS(read_safetensors(path), EngineError);
  REQUIRE_THROWS_WITH(read_safetensors(path), Contains(path) && Contains(problem));
  if (fault == Fault::file) REQUIRE_THROWS_WITH(read_safetensors_metadata(path), Contains(path) && Contains(problem));
  REQUIRE_THROWS_WITH(load_checkpoint(path, *net), Contains(path) && Contains(problem));
}
}  // namespace

TEST_CASE("checkpoint: a directory, a FIFO or an unopenable path is refused by name, without blocking",
          "[checkpoint]") {
  apptest::TempDir dir;
  require_refused(dir.str(), "is a directory");

  const std::string fifo = dir / "pipe.safetensors";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  // A reader that opened the FIFO plainly would wait forever for a writer: the alarm turns that hang into a
  // failure (the test binary dies of SIGALRM) instead of a stuck suite.
  ::alarm(20);
  require_refused(fifo, "is a FIFO");
  ::alarm(0);

  const std::string loop = dir / "loop.safetensors";
  std::filesystem::create_symlink(loop, loop);
  require_refused(loop, "cannot open: Too many levels of symbolic links");

  const std::string locked = dir / "locked.safetensors";
  write_raw(locked, "{}", "");
  std::filesystem::permissions(locked, std::filesystem::perms::none);
  if (::geteuid() == 0) {
    WARN(
        "running as root: mode 000 does not stop root from reading, so the permission case is not checked here "
        "(the symlink loop above is the unopenable case)");
  } else {
    require_refused(locked, "cannot open: Permission denied");
  }
}

TEST_CASE("checkpoint: a file shorter than its header is refused by name", "[checkpoint]") {
  apptest::TempDir dir;
  const std::string tiny = dir / "tiny.safetensors";
  std::ofstream(tiny, std::ios::binary) << std::string("\x10\0\0", 3);
  require_refused(tiny, "3 bytes, too short to be a safetensors file");

  const std::string cut = dir / "cut.safetensors";
  write_raw(cut, "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "\1\2\3\4");
  std::filesystem::resize_file(cut, 20);  // the length still announces the whole header
  require_refused(cut, "header length 54 does not fit the file (20 bytes)");
}

TEST_CASE("checkpoint: crafted shapes and offsets give named errors, never overflow", "[checkpoint]") {
  apptest::TempDir dir;
  const std::string path = dir / "crafted.safetensors";
  auto refused = [&](const std::string& shape, const std::string& offsets, const std::string& problem) {
    INFO("shape " << shape << ", data_offsets " << offsets);
    write_raw(path, "{\"w\":{\"dtype\":\"F32\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}}",
              std::string(16, '\0'));
    require_refused(path, problem, Fault::tensors);
  };
  // 2^32 * 2^32 elements overflow int64.
  refused("[4294967296,4294967296]", "[0,16]", "has more elements than a 64-bit count can hold");
  // 2^31 * 2^31 = 2^62 elements fit, their 2^64 bytes of F32 do not.
  refused("[2147483648,2147483648]", "[0,16]", "needs more than 2^63 bytes");
  // 2^62 bytes fit in the arithmetic but not in the 16-byte file.
  refused("[1073741824,1073741824]", "[0,16]",
          "byte range holds 16 bytes but shape [1073741824, 1073741824] of F32 "
          "needs 4611686018427387904");
  refused("[1073741824,1073741824]", "[0,4611686018427387904]", "lies outside the 16 data bytes");
  refused("[-1]", "[0,16]", "negative dimension -1 in shape");
  refused("[4.0]", "[0,16]", "shape entry should be an integer");
  refused("[9223372036854775808]", "[0,16]", "shape entry should be an integer in [-2^63, 2^63-1]");
  // Offsets are exact unsigned 64-bit integers: no exponent, no fraction, no sign, no rounding above 2^64 - 1.
  // (nlohmann keeps a number's value, not its text: 1.6e1 is shown as the double it reads, 16.0.)
  refused("[4]", "[0,1.6e1]",
          "end offset should be an integer in [0, 2^64-1] written with digits only, but is number 16.0");
  refused("[4]", "[0,16.0]", "but is number 16.0");
  refused("[4]", "[-0,16]", "begin offset should be an integer");
  refused("[4]", "[-16,16]", "but is number -16");
  refused("[4]", "[18446744073709551616,16]", "but is number 1.8446744073709552e+19");
  refused("[4]", "[0,\"16\"]",
          "end offset should be an integer in [0, 2^64-1] written with digits only, but is string \"16\"");
  refused("[4]", "[18446744073709551615,18446744073709551615]", "lies outside the 16 data bytes");
}

TEST_CASE("checkpoint: empty tensors overlap nothing and load beside others", "[checkpoint]") {
  apptest::TempDir dir;
  const std::string path = dir / "empty.safetensors";
  // "e" and "z" start inside "a"'s bytes, but hold none; "big" has a zero dimension beside two that alone
  // would overflow the element count.
  write_raw(path,
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
            "\"big\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296,0],\"data_offsets\":[2,2]},"
            "\"z\":{\"dtype\":\"I32\",\"shape\":[3,0],\"data_offsets\":[8,8]}}",
            std::string("\0\0\x80\x3f\0\0\0\x40", 8));
  SafetensorsFile f = read_safetensors(path);
  REQUIRE(f.tensors.size() == 4);
  REQUIRE(f.find("a")->to_tensor().to_vector() == std::vector<double>{1, 2});
  REQUIRE(f.find("e")->shape == Shape{0});
  REQUIRE(f.find("e")->to_tensor().numel() == 0);
  REQUIRE(f.find("big")->bytes.empty());
  REQUIRE(f.find("z")->to_tensor().shape() == Shape{3, 0});

  // Two non-empty ranges sharing a byte still overlap.
  write_raw(path,
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            "\"b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[7,8]}}",
            std::string(8, '\0'));
  require_refused(path, "tensors 'a' and 'b' overlap", Fault::tensors);
}

TEST_CASE("checkpoint: a tensor named twice in the header is refused by name", "[checkpoint]") {
  apptest::TempDir dir;
  const std::string path = dir / "dup.safetensors";
  const std::string entry = "{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}";
  write_raw(path, "{\"w\":" + entry + ",\"v\":" + entry + ",\"w\":" + entry + "}", "x");
  require_refused(path, "bad safetensors header: json: duplicate key \"w\"");
}

TEST_CASE("json: duplicate keys are found among 100k, in linearithmic time", "[checkpoint][json]") {
  // A linear scan per key made this quadratic (about 30 s for 100k keys); a set makes it well under a second.
  const int n = 100000;
  std::string text = "{";
  for (int i = 0; i < n; ++i) text += cat(i ? "," : "", "\"layer", i, ".weight\":", i);
  std::vector<std::string> keys;
  nlohmann::json v = parse_json(text + "}", &keys);
  REQUIRE(v.size() == n);
  REQUIRE(keys.size() == n);
  REQUIRE(keys[n - 1] == cat("layer", n - 1, ".weight"));  // in the text's order, not sorted
  REQUIRE(keys[10] == "layer10.weight");
  REQUIRE(json_int64(v[keys[n - 1]], "x") == n - 1);
  REQUIRE_THROWS_WITH(parse_json(text + ",\"layer12345.weight\":0}"),
                      Catch::Contains("duplicate key \"layer12345.weight\""));
  REQUIRE_THROWS_WITH(parse_json(text + ",\"layer99999.weight\":0}"),
                      Catch::Contains("duplicate key \"layer99999.weight\""));
  // In a nested object, and in objects inside arrays; the same key in sibling objects is fine.
  REQUIRE_THROWS_WITH(parse_json("{\"a\":{\"b\":1,\"b\":2}}"), Catch::Contains("duplicate key \"b\""));
  REQUIRE_THROWS_WITH(parse_json("[{\"b\":1},{\"c\":1,\"c\":2}]"), Catch::Contains("duplicate key \"c\""));
  REQUIRE(parse_json("[{\"b\":1},{\"b\":2}]").size() == 2);
  REQUIRE(parse_json("{\"a\":{\"b\":1},\"b\":{\"b\":2}}", &keys)["b"]["b"] == 2);
  REQUIRE(keys == std::vector<std::string>{"a", "b"});  // top-level keys only
  parse_json("[{\"b\":1}]", &keys);
  REQUIRE(keys.empty());
}

TEST_CASE("json: integers are read exactly or refused", "[checkpoint][json]") {
  auto num = [](const std::string& text) { return parse_json(text); };
  REQUIRE(json_int64(num("9223372036854775807"), "n") == INT64_MAX);
  REQUIRE(json_int64(num("-9223372036854775808"), "n") == INT64_MIN);
  REQUIRE(json_int64(num("-0"), "n") == 0);
  REQUIRE(json_uint64(num("18446744073709551615"), "n") == UINT64_MAX);
  REQUIRE(json_uint64(num("9007199254740993"), "n") == 9007199254740993ull);  // 2^53 + 1: a double would round it
  for (const char* bad : {"9223372036854775808", "-9223372036854775809", "1e3", "1.0", "1E0", "\"1\"", "null"}) {
    INFO(bad);
    REQUIRE_THROWS_WITH(json_int64(num(bad), "n"), Catch::Contains("n should be an integer"));
  }
  for (const char* bad : {"18446744073709551616", "-1", "-0", "1e3", "0.5", "true"}) {
    INFO(bad);
    REQUIRE_THROWS_WITH(json_uint64(num(bad), "n"), Catch::Contains("n should be an integer"));
  }
  REQUIRE_THROWS_WITH(json_double(num("\"0.5\""), "lr"),
                      Catch::Contains("lr should be a number, but is string \"0.5\""));
  REQUIRE(json_double(num("3"), "x") == 3.0);
}

TEST_CASE("json: malformed text, deep nesting and overflowing numbers are refused as EngineError",
          "[checkpoint][json]") {
  for (const char* bad : {"", "{", "{\"a\":}", "[1,]", "{\"a\":1} x", "\"\\ud83d\\u0041\"", "\"\\ude00\"", "\"\xff\"",
                          "1e400", "nul", "\"tab\there\""}) {
    INFO(bad);
    REQUIRE_THROWS_AS(parse_json(bad), EngineError);
    REQUIRE_THROWS_WITH(parse_json(bad), Catch::StartsWith("json: "));
  }
  // A message quotes little of a long input (nlohmann's names the whole token it stopped in).
  try {
    parse_json("\"" + std::string(1000000, 'a'));
    FAIL("an unterminated string parsed");
  } catch (const EngineError& e) {
    REQUIRE(std::string(e.what()).size() < 1000);
    REQUIRE_THAT(e.what(), Catch::Contains("more bytes)"));
  }
  std::string many = "[0";
  for (int i = 0; i < 100000; ++i) many += ",1";
  try {
    json_int64(parse_json(many + "]"), "n");
    FAIL("an array read as an integer");
  } catch (const EngineError& e) {
    REQUIRE(std::string(e.what()).size() < 1000);
    REQUIRE_THAT(e.what(), Catch::Contains("n should be an integer") && Catch::Contains("but is array [0,1,1"));
  }
  REQUIRE(parse_json(std::string(64, '[') + std::string(64, ']')).is_array());
  REQUIRE_THROWS_WITH(parse_json(std::string(65, '[') + std::string(65, ']')),
                      Catch::Contains("nesting deeper than 64 levels"));
  // A million levels: refused at level 65, not after a million recursive calls.
  REQUIRE_THROWS_WITH(parse_json(std::string(1000000, '[')), Catch::Contains("nesting deeper than 64 levels"));
  REQUIRE(parse_json("\"\\ud83d\\ude00\"") == "\xF0\x9F\x98\x80");
  REQUIRE(is_utf8("caf\xC3\xA9"));
  REQUIRE_FALSE(is_utf8("caf\xE9"));
}

TEST_CASE("json: doubles are written so that they read back bit-identical, NaN as null", "[checkpoint][json]") {
  const double values[] = {0.1,  0.1 + 0.2, 1.0 / 3, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
                           -0.0, 1e21,      1e-7,    0.05,   123456789.123456789,     9007199254740993.0};
  for (double d : values) {
    INFO(nlohmann::json(d).dump());
    const double back = json_double(parse_json(nlohmann::json(d).dump()), "d");
    REQUIRE(std::memcmp(&back, &d, sizeof d) == 0);
  }
  REQUIRE(nlohmann::json(NAN).dump() == "null");
  REQUIRE(nlohmann::json(INFINITY).dump() == "null");
}
