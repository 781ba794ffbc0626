#include "engine/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>

#include "engine/error.h"
#include "engine/json_strict.h"
#include "engine/optim/ema.h"

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
    case DType::bf16:
      return "BF16";  // little-endian 16-bit words, as safetensors and PyTorch store bfloat16
  }
  return "?";
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

// The header length from the file's first 8 bytes (little-endian), checked against the file's size.
uint64_t header_length(const unsigned char* first8, uint64_t file_size, const std::string& name) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | first8[i];
  ENGINE_CHECK(n <= kMaxHeader && n <= file_size - 8, "checkpoint ", name, ": header length ", n,
               " does not fit the file (", file_size, " bytes); the file is truncated or not safetensors");
  return n;
}

void check_size(uint64_t file_size, const std::string& name) {
  ENGINE_CHECK(file_size >= 8, "checkpoint ", name, ": file is ", file_size,
               " bytes, too short to be a safetensors file (needs an 8-byte header length)");
}

using nlohmann::json;

// The header as a JSON object; `order` receives its keys as they appear in the file.
json parse_header(std::string_view text, const std::string& name, std::vector<std::string>* order = nullptr) {
  try {
    json v = parse_json(text, order);
    ENGINE_CHECK(v.is_object(), "the header is not a JSON object");
    return v;
  } catch (const EngineError& e) {
    fail(cat("checkpoint ", name, ": bad safetensors header: ", e.what()));
  }
}

Metadata metadata_of(const json& header, const std::string& path) {
  Metadata meta;
  const auto m = header.find("__metadata__");
  if (m == header.end()) return meta;
  ENGINE_CHECK(m->is_object(), "checkpoint ", path, ": __metadata__ is not an object");
  for (const auto& [k, v] : m->items()) {
    ENGINE_CHECK(v.is_string(), "checkpoint ", path, ": __metadata__ value of \"", k,
                 "\" is not a string (safetensors metadata holds strings only)");
    meta[k] = v.get<std::string>();
  }
  return meta;
}

// A file opened for reading that is known to be a regular file. Opening with O_NONBLOCK and checking with fstat
// on the open descriptor (not stat, then open: the path could change in between) means a FIFO is refused
// instead of blocking forever on a writer that never comes; for a regular file O_NONBLOCK changes nothing.
class RegularFile {
 public:
  explicit RegularFile(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    ENGINE_CHECK(fd_ >= 0, "checkpoint ", path, ": cannot open: ", std::strerror(errno));
    struct stat st;
    if (::fstat(fd_, &st) != 0) fail(cat("checkpoint ", path, ": cannot stat: ", std::strerror(errno)));
    const char* kind = S_ISREG(st.st_mode)                          ? nullptr
                       : S_ISDIR(st.st_mode)                        ? "a directory"
                       : S_ISFIFO(st.st_mode)                       ? "a FIFO (named pipe)"
                       : S_ISSOCK(st.st_mode)                       ? "a socket"
                       : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                                                                    : "not a regular file";
    if (kind) {
      ::close(fd_);
      fail(cat("checkpoint ", path, ": is ", kind, ", not a safetensors file (give the path of a regular file)"));
    }
    size_ = static_cast<uint64_t>(st.st_size);
  }
  ~RegularFile() { ::close(fd_); }
  RegularFile(const RegularFile&) = delete;
  RegularFile& operator=(const RegularFile&) = delete;

  uint64_t size() const { return size_; }

  // Exactly n bytes at `offset`, or an error naming the file (a short read means it shrank while we read).
  void read(uint64_t offset, char* out, uint64_t n) const {
    uint64_t done = 0;
    while (done < n) {
      const ssize_t got = ::pread(fd_, out + done, n - done, static_cast<off_t>(offset + done));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) fail(cat("checkpoint ", path_, ": read error: ", std::strerror(errno)));
      ENGINE_CHECK(got > 0, "checkpoint ", path_, ": the file ended after ", offset + done, " of ", offset + n,
                   " bytes (was it truncated while being read?)");
      done += static_cast<uint64_t>(got);
    }
  }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

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
  else if (dtype == "BF16")
    d = DType::bf16;
  else
    fail(cat("checkpoint: tensor dtype ", dtype, " cannot be loaded into the engine (F32, F64, BF16 or I32 only)"));
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
  // One object member at a time: __metadata__ first, then the tensors in the order of their bytes, as earlier
  // versions wrote them (tests/engine/test_checkpoint_compat.cpp). Each member is dumped on its own because
  // ordered_json looks up every inserted key linearly: quadratic for a header of many tensors.
  std::string header = "{";
  auto member = [&](const std::string& key, const std::string& value_json) {
    header += (header.size() > 1 ? "," : "") + nlohmann::json(key).dump() + ":" + value_json;
  };
  auto utf8 = [&](const std::string& s, const std::string& what) {
    ENGINE_CHECK(is_utf8(s), "checkpoint ", path, ": ", what, " '", s,
                 "' is not valid UTF-8, the only text a JSON header can hold");
  };
  if (!file.metadata.empty()) {
    for (const auto& [k, v] : file.metadata) {
      utf8(k, "metadata key");
      utf8(v, cat("metadata value of '", k, "'"));
    }
    member("__metadata__", nlohmann::json(file.metadata).dump());  // sorted by key, as the std::map is
  }
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& [name, t] : file.tensors) {
    ENGINE_CHECK(name != "__metadata__" && !name.empty(), "checkpoint ", path, ": bad tensor name '", name, "'");
    ENGINE_CHECK(seen.insert(name).second, "checkpoint ", path, ": tensor name '", name, "' appears twice");
    utf8(name, "tensor name");
    int64_t es = element_size(t.dtype);
    ENGINE_CHECK(es > 0, "checkpoint ", path, ": unknown dtype ", t.dtype, " for '", name, "'");
    ENGINE_CHECK(static_cast<int64_t>(t.bytes.size()) == numel_of(t.shape) * es, "checkpoint ", path, ": '", name,
                 "' has ", t.bytes.size(), " bytes but shape ", shape_str(t.shape), " of ", t.dtype);
    const uint64_t end = offset + t.bytes.size();
    member(name,
           nlohmann::ordered_json{{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, end}}}.dump());
    offset = end;
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
  RegularFile in(path);
  check_size(in.size(), path);
  unsigned char first8[8];
  in.read(0, reinterpret_cast<char*>(first8), 8);
  std::string header(header_length(first8, in.size(), path), '\0');
  in.read(8, header.data(), header.size());
  return metadata_of(parse_header(header, path), path);
}

SafetensorsFile read_safetensors(const std::string& path) {
  RegularFile in(path);
  std::string bytes(in.size(), '\0');
  in.read(0, bytes.data(), bytes.size());
  return parse_safetensors(bytes, path);
}

SafetensorsFile parse_safetensors(std::string_view bytes, const std::string& name) {
  ENGINE_CHECK(little_endian_host(), "checkpoint: safetensors needs a little-endian host");
  check_size(bytes.size(), name);
  const uint64_t header_len = header_length(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), name);
  std::vector<std::string> listed;  // the header's keys in file order (the parsed object is sorted by key)
  const json header = parse_header(bytes.substr(8, header_len), name, &listed);
  const std::string_view data = bytes.substr(8 + header_len);

  SafetensorsFile file;
  file.metadata = metadata_of(header, name);
  struct Range {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<Range> ranges;
  for (const std::string& tensor_name : listed) {
    if (tensor_name == "__metadata__") continue;
    const json& v = header.at(tensor_name);
    const std::string what = cat("checkpoint ", name, ": tensor '", tensor_name, "'");
    ENGINE_CHECK(v.is_object(), what, ": entry is not an object");
    const auto dt = v.find("dtype"), sh = v.find("shape"), off = v.find("data_offsets");
    ENGINE_CHECK(dt != v.end() && sh != v.end() && off != v.end(), what, ": entry needs dtype, shape and data_offsets");
    StoredTensor t;
    t.dtype = json_string(*dt, what + " dtype");
    const int64_t es = element_size(t.dtype);
    ENGINE_CHECK(es > 0, what, ": unknown dtype ", t.dtype);
    ENGINE_CHECK(sh->is_array(), what, ": shape should be an array but is ", sh->type_name());
    for (const json& d : *sh) {
      const int64_t n = json_int64(d, what + " shape entry");
      ENGINE_CHECK(n >= 0, what, ": negative dimension ", n, " in shape");
      t.shape.push_back(n);
    }
    int64_t numel = 0, needed = 0;
    try {
      numel = numel_of(t.shape);
    } catch (const EngineError& e) {
      fail(cat(what, ": ", e.what()));
    }
    ENGINE_CHECK(!__builtin_mul_overflow(numel, es, &needed), what, ": shape ", shape_str(t.shape), " of ", t.dtype,
                 " needs more than 2^63 bytes");
    ENGINE_CHECK(off->is_array() && off->size() == 2, what, ": data_offsets needs [begin, end]");
    const uint64_t b = json_uint64((*off)[0], what + " begin offset"), e = json_uint64((*off)[1], what + " end offset");
    ENGINE_CHECK(b <= e && e <= data.size(), what, ": byte range [", b, ", ", e, ") lies outside the ", data.size(),
                 " data bytes (file truncated?)");
    ENGINE_CHECK(e - b == static_cast<uint64_t>(needed), what, ": byte range holds ", e - b, " bytes but shape ",
                 shape_str(t.shape), " of ", t.dtype, " needs ", needed);
    t.bytes.assign(data.begin() + b, data.begin() + e);
    ranges.push_back({b, e, tensor_name});
    file.tensors.emplace_back(tensor_name, std::move(t));
  }
  // An empty range holds no byte, so it overlaps nothing, wherever it starts.
  std::vector<Range> sorted;
  for (const Range& r : ranges)
    if (r.begin < r.end) sorted.push_back(r);
  std::sort(sorted.begin(), sorted.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < sorted.size(); ++i)
    ENGINE_CHECK(sorted[i].begin >= sorted[i - 1].end, "checkpoint ", name, ": tensors '", sorted[i - 1].name,
                 "' and '", sorted[i].name, "' overlap");
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
                     int64_t num_batches_tracked, const nn::NamedTensors& extra) {
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
  for (const auto& [name, t] : extra) file.tensors.emplace_back(name, StoredTensor::from(t));
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
    if (name.rfind(optim::kEmaPrefix, 0) == 0) {  // the average of a model tensor: ModelEma::load reads it
      const std::string of = name.substr(std::strlen(optim::kEmaPrefix));
      if (used.count(of)) continue;
    }
    unknown.push_back(name);
  }
  ENGINE_CHECK(unknown.empty(), "checkpoint ", path, ": ", unknown.size(),
               " tensor(s) do not belong to this model: ", list_some(unknown), model_hint);
  return file.metadata;
}

}  // namespace engine
