#include "engine/json.h"

#include <cmath>
#include <cstdlib>
#include <set>

#include "engine/error.h"

namespace engine::json {

namespace {
const char* type_name(Value::Type t) {
  switch (t) {
    case Value::Type::null:
      return "null";
    case Value::Type::boolean:
      return "a boolean";
    case Value::Type::number:
      return "a number";
    case Value::Type::string:
      return "a string";
    case Value::Type::array:
      return "an array";
    case Value::Type::object:
      return "an object";
  }
  return "?";
}

class Parser {
 public:
  explicit Parser(const std::string& s) : s_(s) {}

  Value document() {
    Value v = value(0);
    skip_ws();
    if (pos_ != s_.size()) error("unexpected trailing characters");
    return v;
  }

 private:
  [[noreturn]] void error(const std::string& what) const { fail(cat("json: ", what, " at byte ", pos_)); }

  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }

  char peek() {
    skip_ws();
    if (pos_ >= s_.size()) error("unexpected end of input");
    return s_[pos_];
  }

  void expect(char c) {
    if (peek() != c) error(cat("expected '", c, "'"));
    ++pos_;
  }

  bool literal(const char* word) {
    size_t n = std::char_traits<char>::length(word);
    if (s_.compare(pos_, n, word) != 0) return false;
    pos_ += n;
    return true;
  }

  Value value(int depth) {
    if (depth > 64) error("nesting deeper than 64 levels");
    char c = peek();
    if (c == '{') return object(depth);
    if (c == '[') return array(depth);
    if (c == '"') return Value::make_string(string());
    if (literal("true")) return Value::make_bool(true);
    if (literal("false")) return Value::make_bool(false);
    if (literal("null")) return Value::make_null();
    if (c == '-' || (c >= '0' && c <= '9')) return number();
    error(cat("unexpected character '", c, "'"));
  }

  Value object(int depth) {
    expect('{');
    std::vector<std::pair<std::string, Value>> members;
    std::set<std::string> keys;  // a header may hold 100k tensors: a linear scan per key would be quadratic
    if (peek() == '}') {
      ++pos_;
      return Value::make_object(std::move(members));
    }
    for (;;) {
      if (peek() != '"') error("expected a string key");
      std::string key = string();
      if (!keys.insert(key).second) error(cat("duplicate key \"", key, "\""));
      expect(':');
      members.emplace_back(std::move(key), value(depth + 1));
      char c = peek();
      ++pos_;
      if (c == '}') break;
      if (c != ',') error("expected ',' or '}'");
    }
    return Value::make_object(std::move(members));
  }

  Value array(int depth) {
    expect('[');
    std::vector<Value> items;
    if (peek() == ']') {
      ++pos_;
      return Value::make_array(std::move(items));
    }
    for (;;) {
      items.push_back(value(depth + 1));
      char c = peek();
      ++pos_;
      if (c == ']') break;
      if (c != ',') error("expected ',' or ']'");
    }
    return Value::make_array(std::move(items));
  }

  Value number() {
    size_t start = pos_;
    if (s_[pos_] == '-') ++pos_;
    auto digits = [&] {
      size_t d = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      if (pos_ == d) error("malformed number");
    };
    digits();
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      digits();
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      digits();
    }
    return Value::make_number(s_.substr(start, pos_ - start));
  }

  static void put_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  uint32_t hex4() {
    if (pos_ + 4 > s_.size()) error("truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= c - '0';
      else if (c >= 'a' && c <= 'f')
        v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F')
        v |= c - 'A' + 10;
      else
        error("bad hex digit in \\u escape");
    }
    return v;
  }

  std::string string() {
    expect('"');
    std::string out;
    for (;;) {
      if (pos_ >= s_.size()) error("unterminated string");
      char c = s_[pos_++];
      if (c == '"') break;
      if (static_cast<unsigned char>(c) < 0x20) error("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size()) error("unterminated escape");
      char e = s_[pos_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          uint32_t cp = hex4();
          // UTF-16 surrogates come in pairs (high, low); a lone one encodes no character.
          if (cp >= 0xDC00 && cp < 0xE000) error("lone low surrogate in \\u escape");
          if (cp >= 0xD800 && cp < 0xDC00) {
            if (s_.compare(pos_, 2, "\\u") != 0) error("high surrogate not followed by a \\u low surrogate");
            pos_ += 2;
            uint32_t lo = hex4();
            if (lo < 0xDC00 || lo >= 0xE000) error("high surrogate not followed by a low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          put_utf8(out, cp);
          break;
        }
        default:
          error(cat("bad escape '\\", e, "'"));
      }
    }
    return out;
  }

  const std::string& s_;
  size_t pos_ = 0;
};
}  // namespace

#define JSON_EXPECT(t) \
  ENGINE_CHECK(type_ == (t), "json: ", what, " should be ", type_name(t), " but is ", type_name(type_))

bool Value::as_bool(const std::string& what) const {
  JSON_EXPECT(Type::boolean);
  return bool_;
}
double Value::as_double(const std::string& what) const {
  JSON_EXPECT(Type::number);
  return std::strtod(text_.c_str(), nullptr);
}
namespace {
// The magnitude of an integer written as [-]digits, exactly; false when it is not such a text or exceeds 2^64-1.
// strtoll would saturate silently and accept "1e3" as 1; doubles round above 2^53.
bool decimal_magnitude(const std::string& text, bool* negative, uint64_t* magnitude) {
  size_t i = 0;
  *negative = !text.empty() && text[0] == '-';
  if (*negative) ++i;
  if (i == text.size()) return false;
  uint64_t v = 0;
  for (; i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
    const uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (v > (UINT64_MAX - digit) / 10) return false;
    v = v * 10 + digit;
  }
  *magnitude = v;
  return true;
}
}  // namespace

int64_t Value::as_int(const std::string& what) const {
  JSON_EXPECT(Type::number);
  bool negative = false;
  uint64_t m = 0;
  const bool ok =
      decimal_magnitude(text_, &negative, &m) && m <= (negative ? uint64_t{1} << 63 : static_cast<uint64_t>(INT64_MAX));
  ENGINE_CHECK(ok, "json: ", what, " should be an integer in [-2^63, 2^63-1] written with digits only, but is ", text_);
  if (!negative || m == 0) return static_cast<int64_t>(m);
  return -static_cast<int64_t>(m - 1) - 1;  // -2^63 has no positive twin in int64
}
uint64_t Value::as_uint64(const std::string& what) const {
  JSON_EXPECT(Type::number);
  bool negative = false;
  uint64_t m = 0;
  const bool ok = decimal_magnitude(text_, &negative, &m) && !negative;
  ENGINE_CHECK(ok, "json: ", what, " should be an integer in [0, 2^64-1] written with digits only, but is ", text_);
  return m;
}
const std::string& Value::as_string(const std::string& what) const {
  JSON_EXPECT(Type::string);
  return text_;
}
const std::vector<Value>& Value::as_array(const std::string& what) const {
  JSON_EXPECT(Type::array);
  return items_;
}
const std::vector<std::pair<std::string, Value>>& Value::as_object(const std::string& what) const {
  JSON_EXPECT(Type::object);
  return members_;
}
#undef JSON_EXPECT

const Value* Value::find(const std::string& key) const {
  if (type_ != Type::object) return nullptr;
  for (const auto& m : members_)
    if (m.first == key) return &m.second;
  return nullptr;
}

std::string Value::scalar_text() const {
  switch (type_) {
    case Type::null:
      return "null";
    case Type::boolean:
      return bool_ ? "true" : "false";
    case Type::number:
    case Type::string:
      return text_;
    default:
      fail("json: scalar_text() of an array or object");
  }
}

Value Value::make_bool(bool b) {
  Value v;
  v.type_ = Type::boolean;
  v.bool_ = b;
  return v;
}
Value Value::make_number(std::string text) {
  Value v;
  v.type_ = Type::number;
  v.text_ = std::move(text);
  return v;
}
Value Value::make_string(std::string s) {
  Value v;
  v.type_ = Type::string;
  v.text_ = std::move(s);
  return v;
}
Value Value::make_array(std::vector<Value> items) {
  Value v;
  v.type_ = Type::array;
  v.items_ = std::move(items);
  return v;
}
Value Value::make_object(std::vector<std::pair<std::string, Value>> members) {
  Value v;
  v.type_ = Type::object;
  v.members_ = std::move(members);
  return v;
}

Value parse(const std::string& text) { return Parser(text).document(); }

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          static const char* hex = "0123456789abcdef";
          out += "\\u00";
          out += hex[(c >> 4) & 0xF];
          out += hex[c & 0xF];
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

}  // namespace engine::json
