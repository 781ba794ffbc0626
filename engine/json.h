// A small JSON reader and string quoting, enough for safetensors headers, config.json and metrics.jsonl.
// Objects keep their key order (so a header can be walked in file order) and numbers keep their source text
// (so 64-bit byte offsets are read exactly).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace engine::json {

class Value {
 public:
  enum class Type { null, boolean, number, string, array, object };

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::null; }
  bool is_object() const { return type_ == Type::object; }
  bool is_array() const { return type_ == Type::array; }
  bool is_string() const { return type_ == Type::string; }
  bool is_number() const { return type_ == Type::number; }

  // Typed access; each throws EngineError naming `what` when the value has another type.
  bool as_bool(const std::string& what = "value") const;
  double as_double(const std::string& what = "value") const;
  // Integers written as plain decimal digits (no fraction, no exponent), read exactly; out of range throws.
  int64_t as_int(const std::string& what = "value") const;
  uint64_t as_uint64(const std::string& what = "value") const;  // non-negative, up to 2^64 - 1
  const std::string& as_string(const std::string& what = "value") const;
  const std::vector<Value>& as_array(const std::string& what = "value") const;
  const std::vector<std::pair<std::string, Value>>& as_object(const std::string& what = "value") const;

  const Value* find(const std::string& key) const;  // object member or nullptr
  // A scalar as text: strings as they are, numbers as written, true/false, null -> "null".
  std::string scalar_text() const;

  static Value make_null() { return Value(); }
  static Value make_bool(bool b);
  static Value make_number(std::string text);
  static Value make_string(std::string s);
  static Value make_array(std::vector<Value> items);
  static Value make_object(std::vector<std::pair<std::string, Value>> members);

 private:
  Type type_ = Type::null;
  bool bool_ = false;
  std::string text_;  // string value, or a number's source text
  std::vector<Value> items_;
  std::vector<std::pair<std::string, Value>> members_;
};

// Parses one JSON document; throws EngineError("json: ... at byte N") on malformed input.
Value parse(const std::string& text);

// `s` as a JSON string literal with quotes and escapes.
std::string quote(const std::string& s);

}  // namespace engine::json
