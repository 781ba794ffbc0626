#include "tests/models/golden_file.h"

#include <cstring>
#include <fstream>
#include <stdexcept>

namespace testing {

namespace {

// Just enough JSON for a safetensors header: objects, arrays, strings (with simple escapes) and integers.
struct Json {
  enum Kind { object, array, string, number } kind = number;
  std::vector<std::pair<std::string, Json>> members;
  std::vector<Json> items;
  std::string text;
};

class Parser {
 public:
  explicit Parser(const std::string& s) : s_(s) {}
  Json parse() {
    Json v = value();
    skip();
    if (i_ != s_.size()) fail("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error("golden file header: " + what + " at offset " + std::to_string(i_));
  }
  void skip() {
    while (i_ < s_.size() && std::strchr(" \t\r\n", s_[i_])) ++i_;
  }
  char peek() {
    skip();
    if (i_ >= s_.size()) fail("unexpected end");
    return s_[i_];
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }
  std::string str() {
    expect('"');
    std::string out;
    while (i_ < s_.size() && s_[i_] != '"') {
      if (s_[i_] == '\\') {
        ++i_;
        if (i_ >= s_.size()) fail("bad escape");
        char e = s_[i_];
        out += e == 'n' ? '\n' : e == 't' ? '\t' : e;  // our files only escape quotes and backslashes
      } else {
        out += s_[i_];
      }
      ++i_;
    }
    expect('"');
    return out;
  }
  Json value() {
    Json v;
    char c = peek();
    if (c == '{') {
      v.kind = Json::object;
      ++i_;
      if (peek() == '}') return ++i_, v;
      for (;;) {
        std::string k = str();
        expect(':');
        v.members.emplace_back(k, value());
        if (peek() == ',') {
          ++i_;
          continue;
        }
        expect('}');
        return v;
      }
    }
    if (c == '[') {
      v.kind = Json::array;
      ++i_;
      if (peek() == ']') return ++i_, v;
      for (;;) {
        v.items.push_back(value());
        if (peek() == ',') {
          ++i_;
          continue;
        }
        expect(']');
        return v;
      }
    }
    if (c == '"') {
      v.kind = Json::string;
      v.text = str();
      return v;
    }
    size_t start = i_;
    while (i_ < s_.size() && std::strchr("-+0123456789.eE", s_[i_])) ++i_;
    if (start == i_) fail("unexpected character");
    v.text = s_.substr(start, i_ - start);
    return v;
  }
  const std::string& s_;
  size_t i_ = 0;
};

template <class T>
void convert(const char* p, size_t n, std::vector<double>& out) {
  // The golden files are little-endian; so is every machine this project targets (x86-64, aarch64).
  for (size_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, p + i * sizeof(T), sizeof(T));
    out.push_back(static_cast<double>(v));
  }
}

}  // namespace

const GoldenTensor& GoldenFile::at(const std::string& name) const {
  auto it = tensors.find(name);
  if (it == tensors.end()) throw std::runtime_error(path + ": no tensor named '" + name + "'");
  return it->second;
}

GoldenFile read_golden(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path + " (regenerate with tests/golden/make_golden.py)");
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (bytes.size() < 8) throw std::runtime_error(path + ": too short for a safetensors file");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  if (n > bytes.size() - 8) throw std::runtime_error(path + ": header length past the end of the file");
  Json header = Parser(bytes.substr(8, n)).parse();
  if (header.kind != Json::object) throw std::runtime_error(path + ": header is not a JSON object");
  const char* data = bytes.data() + 8 + n;
  const size_t data_size = bytes.size() - 8 - n;

  GoldenFile out;
  out.path = path;
  for (const auto& [name, entry] : header.members) {
    if (name == "__metadata__") {
      for (const auto& [k, v] : entry.members) out.metadata[k] = v.text;
      continue;
    }
    GoldenTensor t;
    std::vector<size_t> offsets;
    for (const auto& [k, v] : entry.members) {
      if (k == "dtype") t.dtype = v.text;
      if (k == "shape")
        for (const auto& d : v.items) t.shape.push_back(std::stoll(d.text));
      if (k == "data_offsets")
        for (const auto& d : v.items) offsets.push_back(std::stoull(d.text));
    }
    if (offsets.size() != 2 || offsets[0] > offsets[1] || offsets[1] > data_size)
      throw std::runtime_error(path + ": bad data_offsets for '" + name + "'");
    size_t numel = 1;
    for (auto d : t.shape) numel *= static_cast<size_t>(d);
    const size_t elem = t.dtype == "F64" ? 8 : 4;
    if (offsets[1] - offsets[0] != numel * elem)
      throw std::runtime_error(path + ": '" + name + "' has " + std::to_string(offsets[1] - offsets[0]) +
                               " bytes, its shape needs " + std::to_string(numel * elem));
    const char* p = data + offsets[0];
    if (t.dtype == "F32") {
      convert<float>(p, numel, t.values);
    } else if (t.dtype == "F64") {
      convert<double>(p, numel, t.values);
    } else if (t.dtype == "I32") {
      convert<int32_t>(p, numel, t.values);
    } else {
      throw std::runtime_error(path + ": '" + name + "' has dtype " + t.dtype + ", expected F32, F64 or I32");
    }
    out.tensors[name] = std::move(t);
  }
  return out;
}

std::vector<double> golden_samples(const std::vector<double>& all, int64_t samples, int64_t stride) {
  const int64_t n = static_cast<int64_t>(all.size());
  if (n <= samples) return all;
  std::vector<double> picked;
  for (int64_t k = 0; k < samples; ++k) picked.push_back(all[(k * stride) % n]);
  return picked;
}

}  // namespace testing
