#include "engine/checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>

#include "engine/error.h"
#include "engine/json.h"

namespace engine {

namespace {

constexpr uint64_t kMaxHeader = 100u << 20;  // safetensors' own limit

bool little_endian_host() {
  const uint16_t one = 1;
  unsigned char b;
  std::memcpy(&b, &one, 1);
  return b == 1;
}

int64_t element_size(const std::string& dtype) {
  if (dtype == "F32" || dtype == "I32") return 4;
  if (dtype == "F64" || dtype == "I64") return 8;
  if (dtype == "U8" || dtype == "I8" || dtype == "BOOL") return 1;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16") return 2;
  return 0;
}

const char* st_dtype(DType d) {
  switch (d) {
    case DType::f32:
      return "F32";
    case DType::f64:
      return "F64";
    case DType::i32:
      return "I32";
  }
  return "?";
}

std::string shape_json(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string list_some(const std::vector<std::string>& names, size_t max = 5) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < max; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > max) out += cat(" and ", names.size() - max, " more");
  return out;
}

// Reads the 8-byte length and the header text; leaves `in` at the start of the data.
json::Value read_header(std::ifstream& in, const std::string& path, uint64_t file_size, uint64_t* header_len) {
  ENGINE_CHECK(file_size >= 8, "checkpoint ", path, ": file is ", file_size,
               " bytes, too short to be a safetensors file (needs an 8-byte header length)");
  unsigned char len_bytes[8];
  in.read(reinterpret_cast<char*>(len_bytes), 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
  ENGINE_CHECK(n <= kMaxHeader && n <= file_size - 8, "checkpoint ", path, ": header length ", n,
               " does not fit the file (", file_size, " bytes); the file is truncated or not safetensors");
  std::string header(n, '\0');
  in.read(header.data(), static_cast<std::streamsize>(n));
  ENGINE_CHECK(in.good(), "checkpoint ", path, ": could not read the ", n, "-byte header");
  *header_len = n;
  try {
    json::Value v = json::parse(header);
    ENGINE_CHECK(v.is_object(), "the header is not a JSON object");
    return v;
  } catch (const EngineError& e) {
    fail(cat("checkpoint ", path, ": bad safetensors header: ", e.what()));
  }
}

Metadata metadata_of(const json::Value& header, const std::string& path) {
  Metadata meta;
  if (const json::Value* m = header.find("__metadata__")) {
    ENGINE_CHECK(m->is_object(), "checkpoint ", path, ": __metadata__ is not an object");
    for (const auto& [k, v] : m->as_object()) {
      ENGINE_CHECK(v.is_string(), "checkpoint ", path, ": __metadata__ value of \"", k,
                   "\" is not a string (safetensors metadata holds strings only)");
      meta[k] = v.as_string();
    }
  }
  return meta;
}

uint64_t file_size_of(std::ifstream& in) {
  in.seekg(0, std::ios::end);
  uint64_t size = static_cast<uint64_t>(in.tellg());
  in.seekg(0, std::ios::beg);
  return size;
}

}  // namespace

// ---------------- StoredTensor ----------------
StoredTensor StoredTensor::from(const Tensor& t) {
  ENGINE_CHECK(t.defined(), "checkpoint: cannot store an undefined tensor");
  Tensor host = t.detach().to(Device::cpu());
  StoredTensor s;
  s.dtype = st_dtype(host.dtype());
  s.shape = host.shape();
  size_t bytes = host.numel() * dtype_size(host.dtype());
  s.bytes.resize(bytes);
  if (bytes) std::memcpy(s.bytes.data(), host.raw_data(), bytes);
  return s;
}

Tensor StoredTensor::to_tensor() const {
  DType d;
  if (dtype == "F32")
    d = DType::f32;
  else if (dtype == "F64")
    d = DType::f64;
  else if (dtype == "I32")
    d = DType::i32;
  else
    fail(cat("checkpoint: tensor dtype ", dtype, " cannot be loaded into the engine (F32, F64 or I32 only)"));
  Tensor t = Tensor::empty(shape, d, Device::cpu());
  ENGINE_CHECK(static_cast<size_t>(t.numel() * dtype_size(d)) == bytes.size(), "checkpoint: ", bytes.size(),
               " bytes do not match shape ", shape_str(shape), " of ", dtype);
  if (!bytes.empty()) std::memcpy(t.raw_data(), bytes.data(), bytes.size());
  return t;
}

const StoredTensor* SafetensorsFile::find(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return &t;
  return nullptr;
}

// ---------------- files ----------------
void write_safetensors(const std::string& path, const SafetensorsFile& file) {
  ENGINE_CHECK(little_endian_host(), "checkpoint: safetensors needs a little-endian host");
  std::string header = "{";
  if (!file.metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : file.metadata) {
      header += (first ? "" : ",") + json::quote(k) + ":" + json::quote(v);
      first = false;
    }
    header += "}";
  }
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& [name, t] : file.tensors) {
    ENGINE_CHECK(name != "__metadata__" && !name.empty(), "checkpoint ", path, ": bad tensor name '", name, "'");
    ENGINE_CHECK(seen.insert(name).second, "checkpoint ", path, ": tensor name '", name, "' appears twice");
    int64_t es = element_size(t.dtype);
    ENGINE_CHECK(es > 0, "checkpoint ", path, ": unknown dtype ", t.dtype, " for '", name, "'");
    ENGINE_CHECK(static_cast<int64_t>(t.bytes.size()) == numel_of(t.shape) * es, "checkpoint ", path, ": '", name,
                 "' has ", t.bytes.size(), " bytes but shape ", shape_str(t.shape), " of ", t.dtype);
    if (header.size() > 1) header += ",";
    header += json::quote(name) + ":{\"dtype\":\"" + t.dtype + "\",\"shape\":" + shape_json(t.shape) +
              ",\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + t.bytes.size()) + "]}";
    offset += t.bytes.size();
  }
  header += "}";
  while (header.size() % 8) header += ' ';  // the data then starts 8-byte aligned

  std::string tmp = cat(path, ".tmp-", ::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  ENGINE_CHECK(f, "checkpoint: cannot open ", tmp, " for writing: ", std::strerror(errno));
  unsigned char len_bytes[8];
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>(n >> (8 * i));
  bool ok = std::fwrite(len_bytes, 1, 8, f) == 8 && std::fwrite(header.data(), 1, header.size(), f) == header.size();
  for (const auto& [name, t] : file.tensors)
    ok = ok && (t.bytes.empty() || std::fwrite(t.bytes.data(), 1, t.bytes.size(), f) == t.bytes.size());
  ok = ok && std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
  int err = errno;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    fail(cat("checkpoint: writing ", tmp, " failed: ", std::strerror(err), " (disk full?)"));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    std::remove(tmp.c_str());
    fail(cat("checkpoint: cannot rename ", tmp, " to ", path, ": ", std::strerror(err)));
  }
}

Metadata read_safetensors_metadata(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  ENGINE_CHECK(in, "checkpoint ", path, ": cannot open: ", std::strerror(errno));
  uint64_t header_len = 0;
  json::Value header = read_header(in, path, file_size_of(in), &header_len);
  return metadata_of(header, path);
}

SafetensorsFile read_safetensors(const std::string& path) {
  ENGINE_CHECK(little_endian_host(), "checkpoint: safetensors needs a little-endian host");
  std::ifstream in(path, std::ios::binary);
  ENGINE_CHECK(in, "checkpoint ", path, ": cannot open: ", std::strerror(errno));
  uint64_t size = file_size_of(in), header_len = 0;
  json::Value header = read_header(in, path, size, &header_len);
  const uint64_t data_size = size - 8 - header_len;

  SafetensorsFile file;
  file.metadata = metadata_of(header, path);
  struct Range {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<Range> ranges;
  for (const auto& [name, v] : header.as_object()) {
    if (name == "__metadata__") continue;
    const std::string what = cat("checkpoint ", path, ": tensor '", name, "'");
    ENGINE_CHECK(v.is_object(), what, ": entry is not an object");
    const json::Value* dt = v.find("dtype");
    const json::Value* sh = v.find("shape");
    const json::Value* off = v.find("data_offsets");
    ENGINE_CHECK(dt && sh && off, what, ": entry needs dtype, shape and data_offsets");
    StoredTensor t;
    t.dtype = dt->as_string(what + " dtype");
    int64_t es = element_size(t.dtype);
    ENGINE_CHECK(es > 0, what, ": unknown dtype ", t.dtype);
    for (const auto& d : sh->as_array(what + " shape")) {
      int64_t n = d.as_int(what + " shape entry");
      ENGINE_CHECK(n >= 0, what, ": negative dimension in shape");
      t.shape.push_back(n);
    }
    const auto& o = off->as_array(what + " data_offsets");
    ENGINE_CHECK(o.size() == 2, what, ": data_offsets needs [begin, end]");
    int64_t b = o[0].as_int(what + " offset"), e = o[1].as_int(what + " offset");
    ENGINE_CHECK(b >= 0 && b <= e && static_cast<uint64_t>(e) <= data_size, what, ": byte range [", b, ", ", e,
                 ") lies outside the ", data_size, " data bytes (file truncated?)");
    ENGINE_CHECK(e - b == numel_of(t.shape) * es, what, ": byte range holds ", e - b, " bytes but shape ",
                 shape_str(t.shape), " of ", t.dtype, " needs ", numel_of(t.shape) * es);
    ranges.push_back({static_cast<uint64_t>(b), static_cast<uint64_t>(e), name});
    file.tensors.emplace_back(name, std::move(t));
  }
  std::vector<Range> sorted = ranges;
  std::sort(sorted.begin(), sorted.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < sorted.size(); ++i)
    ENGINE_CHECK(sorted[i].begin >= sorted[i - 1].end, "checkpoint ", path, ": tensors '", sorted[i - 1].name,
                 "' and '", sorted[i].name, "' overlap");

  std::vector<char> data(data_size);
  in.read(data.data(), static_cast<std::streamsize>(data_size));
  ENGINE_CHECK(in.good() || data_size == 0, "checkpoint ", path, ": could not read the ", data_size, " data bytes");
  for (size_t i = 0; i < ranges.size(); ++i)
    file.tensors[i].second.bytes.assign(data.begin() + ranges[i].begin, data.begin() + ranges[i].end);
  // File order: by offset.
  std::vector<size_t> order(ranges.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ranges[a].begin < ranges[b].begin; });
  SafetensorsFile sorted_file;
  sorted_file.metadata = std::move(file.metadata);
  for (size_t i : order) sorted_file.tensors.push_back(std::move(file.tensors[i]));
  return sorted_file;
}

// ---------------- module checkpoints ----------------
void save_checkpoint(const std::string& path, const nn::Module& model, const optim::SGD* opt, const Metadata& metadata,
                     int64_t num_batches_tracked) {
  SafetensorsFile file;
  file.metadata = metadata;
  nn::NamedTensors params = model.named_parameters();
  for (const auto& [name, t] : params) file.tensors.emplace_back(name, StoredTensor::from(t));
  for (const auto& [name, t] : model.named_buffers()) {
    file.tensors.emplace_back(name, StoredTensor::from(t));
    const std::string suffix = "running_mean";
    if (num_batches_tracked >= 0 && ends_with(name, suffix)) {
      StoredTensor counter;
      counter.dtype = "I64";
      counter.bytes.resize(8);
      for (int i = 0; i < 8; ++i)
        counter.bytes[i] = static_cast<char>(static_cast<uint64_t>(num_batches_tracked) >> (8 * i));
      file.tensors.emplace_back(name.substr(0, name.size() - suffix.size()) + "num_batches_tracked", counter);
    }
  }
  if (opt) {
    const auto& opt_params = opt->params();
    const auto& bufs = const_cast<optim::SGD*>(opt)->momentum_buffers();
    for (size_t i = 0; i < opt_params.size(); ++i) {
      if (!bufs[i].defined()) continue;
      const std::string* name = nullptr;
      for (const auto& [n, p] : params)
        if (p.same(opt_params[i])) name = &n;
      ENGINE_CHECK(name, "save_checkpoint: optimizer parameter ", i, " ", opt_params[i].str(),
                   " is not a parameter of the model (was the optimizer built before model.to(device)?)");
      file.tensors.emplace_back(kMomentumPrefix + *name, StoredTensor::from(bufs[i]));
    }
  }
  write_safetensors(path, file);
}

Metadata load_checkpoint(const std::string& path, nn::Module& model, optim::SGD* opt) {
  SafetensorsFile file = read_safetensors(path);
  std::set<std::string> used;
  std::vector<std::string> missing;
  auto load_into = [&](const std::string& name, Tensor slot) {
    const StoredTensor* st = file.find(name);
    if (!st) {
      missing.push_back(name);
      return;
    }
    used.insert(name);
    ENGINE_CHECK(st->shape == slot.shape(), "checkpoint ", path, ": '", name, "' has shape ", shape_str(st->shape),
                 " but the model's is ", shape_str(slot.shape()),
                 " (was it saved from another model or configuration?)");
    slot.copy_(st->to_tensor().to(slot.dtype()).to(slot.device()));
  };
  nn::NamedTensors params = model.named_parameters();
  for (const auto& [name, t] : params) load_into(name, t);
  for (const auto& [name, t] : model.named_buffers()) load_into(name, t);
  std::string model_hint;
  if (file.metadata.count("model"))
    model_hint = cat(" (the file's metadata says model '", file.metadata["model"], "')");
  ENGINE_CHECK(missing.empty(), "checkpoint ", path, ": ", missing.size(),
               " model tensor(s) are missing: ", list_some(missing), model_hint);

  std::set<std::string> momentum_names;
  if (opt) {
    const auto& opt_params = opt->params();
    auto& bufs = opt->momentum_buffers();
    for (size_t i = 0; i < opt_params.size(); ++i) {
      const std::string* name = nullptr;
      for (const auto& [n, p] : params)
        if (p.same(opt_params[i])) name = &n;
      ENGINE_CHECK(name, "load_checkpoint: optimizer parameter ", i, " is not a parameter of the model");
      const std::string key = kMomentumPrefix + *name;
      const StoredTensor* st = file.find(key);
      if (!st || opt->options().momentum == 0) {
        bufs[i] = Tensor();
        continue;
      }
      used.insert(key);
      ENGINE_CHECK(st->shape == opt_params[i].shape(), "checkpoint ", path, ": '", key, "' has shape ",
                   shape_str(st->shape), " but the parameter's is ", shape_str(opt_params[i].shape()));
      bufs[i] = st->to_tensor().to(opt_params[i].dtype()).to(opt_params[i].device());
    }
  }
  std::vector<std::string> unknown;
  for (const auto& [name, t] : file.tensors) {
    if (used.count(name) || ends_with(name, ".num_batches_tracked") || name == "num_batches_tracked") continue;
    if (name.rfind(kMomentumPrefix, 0) == 0) {
      // Momentum of a parameter the model has is fine to skip without an optimizer; of one it lacks, not.
      std::string param = name.substr(std::strlen(kMomentumPrefix));
      bool known = false;
      for (const auto& [n, p] : params) known = known || n == param;
      if (known) continue;
    }
    unknown.push_back(name);
  }
  ENGINE_CHECK(unknown.empty(), "checkpoint ", path, ": ", unknown.size(),
               " tensor(s) do not belong to this model: ", list_some(unknown), model_hint);
  return file.metadata;
}

}  // namespace engine
