// libFuzzer target for how JSON is read (engine/json_strict.cpp over nlohmann-json): parse_json, the typed
// accessors and record_from_json (metrics.jsonl and the history in checkpoint metadata). Any input must either
// parse or throw EngineError (never one of nlohmann's exceptions); on a parsed document every accessor must return
// or throw EngineError, and the document must survive dump() and parse_json() unchanged (what every writer here
// relies on: strings as they were, doubles bit-identical).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "apps/common/metrics.h"
#include "engine/error.h"
#include "engine/json_strict.h"

namespace {
using nlohmann::json;

template <class F>
void may_throw(F f) {
  try {
    f();
  } catch (const engine::EngineError&) {
  }
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

void walk(const json& v) {
  switch (v.type()) {
    case json::value_t::array:
      for (const json& item : v) walk(item);
      break;
    case json::value_t::object:
      for (const auto& [key, member] : v.items()) {
        if (v.find(key) == v.end()) __builtin_trap();  // a member is found by its key
        walk(member);
      }
      may_throw([&] { app::record_from_json(v); });
      break;
    case json::value_t::string:
      if (engine::parse_json(json(v.get<std::string>()).dump()) != v) __builtin_trap();
      break;
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: {
      may_throw([&] { engine::json_int64(v, "n"); });
      may_throw([&] { engine::json_uint64(v, "n"); });
      const double d = engine::json_double(v, "n");
      if (v.is_number_float() && !same_bits(engine::json_double(engine::parse_json(v.dump()), "n"), d))
        __builtin_trap();  // a double reads back bit-identical
      break;
    }
    default:
      may_throw([&] { engine::json_string(v, "s"); });
      break;
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  json v;
  std::vector<std::string> keys;
  try {
    v = engine::parse_json(std::string(reinterpret_cast<const char*>(data), size), &keys);
  } catch (const engine::EngineError&) {
    return 0;
  }
  // The top-level object's keys are listed, each once; nothing else is.
  if (keys.size() != (v.is_object() ? v.size() : 0)) __builtin_trap();
  walk(v);
  if (engine::parse_json(v.dump()) != v) __builtin_trap();
  return 0;
}
