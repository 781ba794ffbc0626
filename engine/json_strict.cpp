#include "engine/json_strict.h"

#include <set>

#include "engine/error.h"

namespace engine {

namespace {
using nlohmann::json;

constexpr int kMaxDepth = 64;
constexpr size_t kMaxShown = 200;  // a message quotes at most this much of the input (a header may be 100 MB)

std::string clipped(std::string s) {
  if (s.size() > kMaxShown) s = s.substr(0, kMaxShown) + cat("... (", s.size() - kMaxShown, " more bytes)");
  return s;
}

// nlohmann's what() starts with "[json.exception.parse_error.101] ": the id helps no reader of our errors.
std::string message_of(const json::exception& e) {
  std::string m = e.what();
  if (!m.empty() && m[0] == '[') {
    const size_t end = m.find("] ");
    if (end != std::string::npos) m.erase(0, end + 2);
  }
  return clipped(m);
}

// A value as it reads in an error message: numbers and literals as nlohmann writes them, strings quoted.
std::string shown(const json& v) {
  try {
    return clipped(v.dump(-1, ' ', false, json::error_handler_t::replace));
  } catch (const json::exception&) {
    return "?";
  }
}

[[noreturn]] void wrong_type(const json& v, const std::string& what, const char* expected) {
  fail(cat("json: ", what, " should be ", expected, ", but is ", v.type_name(), " ", shown(v)));
}
}  // namespace

json parse_json(std::string_view text, std::vector<std::string>* top_level_keys) {
  // The keys seen so far in each open object, innermost last: a set each, so 100k keys cost n log n.
  std::vector<std::set<std::string>> open;
  if (top_level_keys) top_level_keys->clear();
  json::parser_callback_t check = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        ENGINE_CHECK(depth < kMaxDepth, "nesting deeper than ", kMaxDepth, " levels");
        if (event == json::parse_event_t::object_start) open.emplace_back();
        break;
      case json::parse_event_t::object_end:
        open.pop_back();
        break;
      case json::parse_event_t::key: {
        const std::string& key = parsed.get_ref<const std::string&>();
        ENGINE_CHECK(open.back().insert(key).second, "duplicate key \"", key, "\"");
        if (top_level_keys && depth == 1) top_level_keys->push_back(key);  // a key of the top-level object
        break;
      }
      default:
        break;
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), check);
  } catch (const json::exception& e) {
    fail(cat("json: ", message_of(e)));
  } catch (const EngineError& e) {
    fail(cat("json: ", e.what()));
  }
}

int64_t json_int64(const json& v, const std::string& what) {
  if (v.is_number_integer() && !v.is_number_unsigned()) return v.get<int64_t>();
  if (v.is_number_unsigned() && v.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX))
    return static_cast<int64_t>(v.get<uint64_t>());
  wrong_type(v, what, "an integer in [-2^63, 2^63-1] written with digits only");
}

uint64_t json_uint64(const json& v, const std::string& what) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  wrong_type(v, what, "an integer in [0, 2^64-1] written with digits only");
}

double json_double(const json& v, const std::string& what) {
  if (v.is_number()) return v.get<double>();
  wrong_type(v, what, "a number");
}

const std::string& json_string(const json& v, const std::string& what) {
  if (v.is_string()) return v.get_ref<const std::string&>();
  wrong_type(v, what, "a string");
}

bool is_utf8(const std::string& s) {
  try {
    (void)json(s).dump();
    return true;
  } catch (const json::type_error&) {
    return false;
  }
}

}  // namespace engine
