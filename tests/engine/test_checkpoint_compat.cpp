// Files written by the code before nlohmann-json (tests/engine/data/old_format/, commit 350f891) read the same
// today, and what today's code writes from them is the same bytes, so the previous code reads it as before.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "apps/common/config.h"
#include "apps/common/metrics.h"
#include "apps/common/trainer.h"
#include "engine/checkpoint.h"
#include "engine/json_strict.h"
#include "tests/app/app_test_util.h"
#include "tests/app/tiny_run.h"

using namespace engine;

namespace {
const std::string kDir = std::string(ENGINE_SOURCE_DIR) + "/tests/engine/data/old_format/";

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

uint64_t fnv1a(const char* p, size_t n) {  // as the program in old_format/README.md computed it
  uint64_t h = 14695981039346656037ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<unsigned char>(p[i])) * 1099511628211ull;
  return h;
}

std::string hex(uint64_t h) {
  std::ostringstream os;
  os << std::hex;
  os.width(16);
  os.fill('0');
  os << h;
  return os.str();
}

// The manifest the old code printed, line by line, against the same lines made from what today's code read.
std::vector<std::string> manifest_lines(const SafetensorsFile& f) {
  std::vector<std::string> out;
  for (const auto& [name, t] : f.tensors)
    out.push_back(cat("tensor ", name, " ", t.dtype, " ", shape_str(t.shape), " ", t.bytes.size(), " ",
                      hex(fnv1a(t.bytes.data(), t.bytes.size()))));
  for (const auto& [k, v] : f.metadata)
    out.push_back(cat("meta ", k, " ", v.size(), " ", hex(fnv1a(v.data(), v.size()))));
  return out;
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

void require_same_record(const app::EpochRecord& a, const app::EpochRecord& b) {
  REQUIRE(a.epoch == b.epoch);
  for (auto m :
       {&app::EpochRecord::train_loss, &app::EpochRecord::train_acc, &app::EpochRecord::val_loss,
        &app::EpochRecord::val_acc, &app::EpochRecord::test_loss, &app::EpochRecord::test_acc, &app::EpochRecord::lr,
        &app::EpochRecord::examples_per_sec, &app::EpochRecord::epoch_seconds, &app::EpochRecord::elapsed_seconds})
    REQUIRE(same_bits(a.*m, b.*m));
}

std::vector<app::EpochRecord> read_jsonl(const std::string& text) {
  std::vector<app::EpochRecord> out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line))
    if (!line.empty()) out.push_back(app::record_from_json(parse_json(line)));
  return out;
}
}  // namespace

TEST_CASE("compat: a checkpoint of the previous code reads the same tensors and metadata", "[checkpoint][compat]") {
  const SafetensorsFile f = read_safetensors(kDir + "last.safetensors");
  std::vector<std::string> expected;
  std::istringstream manifest(slurp(kDir + "manifest.txt"));
  for (std::string line; std::getline(manifest, line);)
    if (!line.empty() && line[0] != '#') expected.push_back(line);
  REQUIRE(expected.size() == 13 + 45);  // 13 tensors in file order, 45 metadata keys
  REQUIRE(manifest_lines(f) == expected);

  // A few values spelled out, among them a string with a quote and a non-ASCII letter.
  REQUIRE(f.metadata.at("config.out") == "/tmp/jsongen/r\xC3\xBCn \"old\"");
  REQUIRE(f.metadata.at("epoch") == "2");
  REQUIRE(f.metadata.at("config.lr") == "0.05");
  REQUIRE(f.find("1.num_batches_tracked")->dtype == "I64");
  REQUIRE(f.find("1.num_batches_tracked")->bytes[0] == 8);
  REQUIRE(read_safetensors_metadata(kDir + "last.safetensors") == f.metadata);

  // The history in the metadata is metrics.jsonl's text, and reads as the same records.
  REQUIRE(f.metadata.at("history") == slurp(kDir + "metrics.jsonl"));
  const std::vector<app::EpochRecord> history = read_jsonl(f.metadata.at("history"));
  REQUIRE(history.size() == 2);
  REQUIRE(history[1].test_acc == 0.59375);
  REQUIRE(history[0].train_loss == 2.2460601329803467);

  // It loads into the model and optimizer it came from.
  auto net = apptest::tiny_net(1);
  optim::SGD opt(net->parameters(), {0.05, 0.9, 5e-4, true});
  load_checkpoint(kDir + "last.safetensors", *net, &opt);
  REQUIRE(StoredTensor::from(net->find("5.weight")).bytes == f.find("5.weight")->bytes);
  REQUIRE(StoredTensor::from(opt.momentum_buffers()[0]).bytes == f.find("optimizer.momentum.0.weight")->bytes);
}

TEST_CASE("compat: writing what was read gives the previous code's bytes", "[checkpoint][compat]") {
  // Byte identity means the previous code reads today's files as it read its own (same header text). It holds
  // for every file whose names and metadata have no \b or \f: nlohmann writes those two as \b and \f where the
  // previous code wrote \u0008 and \u000c (both readers read either).
  apptest::TempDir dir;
  const std::string old_bytes = slurp(kDir + "last.safetensors");
  const SafetensorsFile f = read_safetensors(kDir + "last.safetensors");
  write_safetensors(dir / "again.safetensors", f);
  REQUIRE(slurp(dir / "again.safetensors") == old_bytes);

  // The same through the model: load, then save as the trainer does (num_batches_tracked = global step).
  auto net = apptest::tiny_net(1);
  optim::SGD opt(net->parameters(), {0.05, 0.9, 5e-4, true});
  const Metadata meta = load_checkpoint(kDir + "last.safetensors", *net, &opt);
  save_checkpoint(dir / "saved.safetensors", *net, &opt, meta, std::stoll(meta.at("global_step")));
  REQUIRE(slurp(dir / "saved.safetensors") == old_bytes);
}

TEST_CASE("compat: config.json and metrics.jsonl of the previous code", "[checkpoint][compat]") {
  // config.json: today's writer, given the configuration saved in the old checkpoint, writes the same values
  // (and, for this file, the same text: every number's shortest form is the one the old code chose).
  const std::string old_config = slurp(kDir + "config.json");
  const app::TrainConfig cfg =
      app::config_from_metadata(read_safetensors_metadata(kDir + "last.safetensors"), "old_format/last.safetensors");
  std::string new_config = app::config_to_json(cfg);
  // Fields added since that commit are written with their defaults; apart from them, text and values match.
  const auto old_json = parse_json(old_config);
  auto new_json = parse_json(new_config);
  const app::TrainConfig defaults;
  for (const std::string& name : app::fields_added_later()) {
    if (old_json.contains(name)) continue;
    INFO(name);
    REQUIRE(new_json.contains(name));
    const auto field = std::find_if(app::train_config_fields().begin(), app::train_config_fields().end(),
                                    [&](const app::ConfigField& f) { return f.name == name; });
    REQUIRE(field != app::train_config_fields().end());
    REQUIRE(field->get(cfg) == field->get(defaults));
    new_json.erase(name);
    const std::string line_start = ",\n  \"" + name + "\": ";  // from the comma before it to its value's end
    const size_t at = new_config.find(line_start);
    REQUIRE(at != std::string::npos);
    new_config.erase(at, new_config.find_first_of(",\n", at + line_start.size()) - at);
  }
  REQUIRE(new_json == old_json);
  REQUIRE(new_config == old_config);

  // metrics.jsonl: each line reads back, and today's line for that record reads as the same doubles.
  for (const app::EpochRecord& r : read_jsonl(slurp(kDir + "metrics.jsonl"))) {
    INFO("epoch " << r.epoch);
    require_same_record(app::record_from_json(parse_json(app::to_json_line(r))), r);
  }
}

TEST_CASE("compat: a run resumes from the previous code's checkpoint", "[checkpoint][compat][app]") {
  apptest::TempDir dir;
  std::filesystem::copy_file(kDir + "last.safetensors", dir / "last.safetensors");
  app::clear_interrupt();
  app::TrainConfig cfg = apptest::tiny_config(dir.str());
  cfg.resume = dir / "last.safetensors";
  const app::TrainResult r = app::train(cfg, apptest::tiny_net(999), apptest::tiny_data(), apptest::quiet());
  REQUIRE(r.status == app::TrainStatus::finished);
  REQUIRE(r.history.size() == 3);
  const std::vector<app::EpochRecord> old = read_jsonl(slurp(kDir + "metrics.jsonl"));
  for (size_t i = 0; i < old.size(); ++i) require_same_record(r.history[i], old[i]);
  REQUIRE(std::isfinite(r.history[2].test_acc));
  REQUIRE(read_safetensors_metadata(dir / "last.safetensors").at("epoch") == "3");
}
