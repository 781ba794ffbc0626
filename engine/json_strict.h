// JSON through nlohmann-json with the checks every reader here needs: a key twice in one object is refused
// (nlohmann would keep the last silently), nesting is bounded, and typed access names what was expected.
// Every error is an EngineError, so callers never see nlohmann's exception types.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace engine {

// Parses one document. Refuses, with EngineError("json: ..."), malformed text (including strings that are not
// UTF-8), a duplicate key in any object, nesting deeper than 64 levels and numbers beyond the range of a double.
// Objects come back sorted by key; `top_level_keys`, when given, receives the top-level object's keys in the order
// they appear in the text.
nlohmann::json parse_json(std::string_view text, std::vector<std::string>* top_level_keys = nullptr);

// Typed access; each throws EngineError naming `what` when the value has another type.
// Integers must have been written with digits only (no fraction, no exponent) and are read exactly.
int64_t json_int64(const nlohmann::json& v, const std::string& what);
uint64_t json_uint64(const nlohmann::json& v, const std::string& what);  // no sign: "-0" is refused
double json_double(const nlohmann::json& v, const std::string& what);    // any number
const std::string& json_string(const nlohmann::json& v, const std::string& what);

// Whether `s` is valid UTF-8, the only text JSON can hold (nlohmann refuses to write anything else).
bool is_utf8(const std::string& s);

}  // namespace engine
