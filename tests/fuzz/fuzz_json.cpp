// libFuzzer target for the JSON parser (engine/json.cpp). Any input must either parse or throw EngineError;
// on a parsed document every typed accessor must return or throw EngineError, and every string must survive
// quote() and parse() unchanged (what the checkpoint writer relies on).
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/error.h"
#include "engine/json.h"

namespace {
using engine::json::Value;

template <class F>
void may_throw(F f) {
  try {
    f();
  } catch (const engine::EngineError&) {
  }
}

void walk(const Value& v) {
  switch (v.type()) {
    case Value::Type::array:
      for (const Value& item : v.as_array()) walk(item);
      break;
    case Value::Type::object:
      for (const auto& [key, member] : v.as_object()) {
        if (v.find(key) == nullptr) __builtin_trap();  // a member is found by its key
        walk(member);
      }
      break;
    case Value::Type::string:
      if (engine::json::parse(engine::json::quote(v.as_string())).as_string() != v.as_string()) __builtin_trap();
      break;
    case Value::Type::number:
      may_throw([&] { v.as_int(); });
      may_throw([&] { v.as_uint64(); });
      v.as_double();
      break;
    default:
      break;
  }
  may_throw([&] { v.scalar_text(); });
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Value v;
  try {
    v = engine::json::parse(std::string(reinterpret_cast<const char*>(data), size));
  } catch (const engine::EngineError&) {
    return 0;
  }
  walk(v);
  return 0;
}
