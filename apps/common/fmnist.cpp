#include "apps/common/fmnist.h"

#include <fmt/format.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/error.h"

namespace app {

using engine::cat;

const std::vector<std::string>& fashion_class_names() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

std::vector<uint8_t> read_maybe_gz(const std::string& path) {
  std::ifstream probe(path, std::ios::binary);
  ENGINE_CHECK(probe, path, ": cannot open: ", std::strerror(errno));
  unsigned char magic[2] = {0, 0};
  probe.read(reinterpret_cast<char*>(magic), 2);
  const bool gz = probe.gcount() == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
  if (!gz) {
    probe.clear();
    probe.seekg(0, std::ios::end);
    std::vector<uint8_t> out(static_cast<size_t>(probe.tellg()));
    probe.seekg(0);
    probe.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(out.size()));
    ENGINE_CHECK(probe || out.empty(), path, ": read error");
    return out;
  }
  gzFile f = gzopen(path.c_str(), "rb");
  ENGINE_CHECK(f, path, ": cannot open as gzip: ", std::strerror(errno));
  std::vector<uint8_t> out;
  std::vector<uint8_t> chunk(1 << 20);
  for (;;) {
    int n = gzread(f, chunk.data(), static_cast<unsigned>(chunk.size()));
    if (n < 0) {
      int code = 0;
      std::string msg = gzerror(f, &code);
      gzclose(f);
      engine::fail(cat(path, ": corrupt gzip data: ", msg));
    }
    if (n == 0) break;
    out.insert(out.end(), chunk.begin(), chunk.begin() + n);
  }
  int code = 0;
  std::string msg = gzerror(f, &code);
  gzclose(f);
  // A gzip stream cut short reads as a clean end of data with Z_BUF_ERROR set.
  ENGINE_CHECK(code == Z_OK || code == Z_STREAM_END, path, ": truncated or corrupt gzip file (", msg, ")");
  return out;
}

namespace {
uint32_t be32(const std::vector<uint8_t>& b, size_t at) {
  return (uint32_t(b[at]) << 24) | (uint32_t(b[at + 1]) << 16) | (uint32_t(b[at + 2]) << 8) | uint32_t(b[at + 3]);
}

std::string hex(uint32_t v) { return fmt::format("{:#010x}", v); }
}  // namespace

IdxImages parse_idx_images(const std::vector<uint8_t>& bytes, const std::string& name) {
  ENGINE_CHECK(bytes.size() >= 4, name, ": ", bytes.size(), " bytes is too short for an IDX file");
  uint32_t magic = be32(bytes, 0);
  ENGINE_CHECK(magic == 0x00000803, name, ": wrong magic number ", hex(magic),
               ", expected 0x00000803 (IDX, unsigned bytes, 3 dimensions: an image file)",
               magic == 0x00000801 ? "; this looks like a label file" : "");
  ENGINE_CHECK(bytes.size() >= 16, name, ": ", bytes.size(),
               " bytes is too short for an IDX image file (the header alone is 16 bytes)");
  IdxImages im;
  im.count = be32(bytes, 4);
  uint32_t rows = be32(bytes, 8), cols = be32(bytes, 12);
  ENGINE_CHECK(rows > 0 && cols > 0 && rows <= 4096 && cols <= 4096, name, ": implausible image size ", rows, "x",
               cols);
  im.rows = static_cast<int>(rows);
  im.cols = static_cast<int>(cols);
  const uint64_t expected = 16 + static_cast<uint64_t>(im.count) * rows * cols;
  ENGINE_CHECK(bytes.size() >= expected, name, ": truncated: the header announces ", im.count, " images of ", rows, "x",
               cols, " (", expected, " bytes) but the file has ", bytes.size(), " bytes");
  ENGINE_CHECK(bytes.size() == expected, name, ": ", bytes.size() - expected, " unexpected bytes after the last of ",
               im.count, " images");
  im.pixels.assign(bytes.begin() + 16, bytes.end());
  return im;
}

std::vector<int32_t> parse_idx_labels(const std::vector<uint8_t>& bytes, const std::string& name, int num_classes) {
  ENGINE_CHECK(bytes.size() >= 4, name, ": ", bytes.size(), " bytes is too short for an IDX file");
  uint32_t magic = be32(bytes, 0);
  ENGINE_CHECK(magic == 0x00000801, name, ": wrong magic number ", hex(magic),
               ", expected 0x00000801 (IDX, unsigned bytes, 1 dimension: a label file)",
               magic == 0x00000803 ? "; this looks like an image file" : "");
  ENGINE_CHECK(bytes.size() >= 8, name, ": ", bytes.size(),
               " bytes is too short for an IDX label file (the header alone is 8 bytes)");
  uint64_t count = be32(bytes, 4);
  ENGINE_CHECK(bytes.size() >= 8 + count, name, ": truncated: the header announces ", count,
               " labels but the file holds ", bytes.size() - 8);
  ENGINE_CHECK(bytes.size() == 8 + count, name, ": ", bytes.size() - 8 - count, " unexpected bytes after the last of ",
               count, " labels");
  std::vector<int32_t> labels(count);
  for (uint64_t i = 0; i < count; ++i) {
    labels[i] = bytes[8 + i];
    ENGINE_CHECK(labels[i] < num_classes, name, ": label ", labels[i], " at index ", i, " is out of range [0, ",
                 num_classes, ")");
  }
  return labels;
}

LabeledImages load_idx_pair(const std::string& images_path, const std::string& labels_path, int num_classes) {
  IdxImages im = parse_idx_images(read_maybe_gz(images_path), images_path);
  std::vector<int32_t> labels = parse_idx_labels(read_maybe_gz(labels_path), labels_path, num_classes);
  ENGINE_CHECK(static_cast<int64_t>(labels.size()) == im.count, "count mismatch: ", images_path, " has ", im.count,
               " images but ", labels_path, " has ", labels.size(), " labels");
  LabeledImages out;
  out.count = im.count;
  out.rows = im.rows;
  out.cols = im.cols;
  out.pixels = std::move(im.pixels);
  out.labels = std::move(labels);
  return out;
}

LabeledImages LabeledImages::head(int64_t n) const {
  if (n <= 0 || n >= count) return *this;
  std::vector<int64_t> idx(n);
  for (int64_t i = 0; i < n; ++i) idx[i] = i;
  return select(idx);
}

LabeledImages LabeledImages::select(const std::vector<int64_t>& indices) const {
  LabeledImages out;
  out.count = static_cast<int64_t>(indices.size());
  out.rows = rows;
  out.cols = cols;
  const size_t px = static_cast<size_t>(rows) * cols;
  out.pixels.resize(indices.size() * px);
  out.labels.resize(indices.size());
  for (size_t i = 0; i < indices.size(); ++i) {
    ENGINE_CHECK(indices[i] >= 0 && indices[i] < count, "select: index ", indices[i], " outside [0, ", count, ")");
    std::memcpy(out.pixels.data() + i * px, pixels.data() + indices[i] * px, px);
    out.labels[i] = labels[indices[i]];
  }
  return out;
}

std::string find_idx_file(const std::string& dir, const std::string& base) {
  namespace fs = std::filesystem;
  for (const std::string& name : {base + ".gz", base}) {
    fs::path p = fs::path(dir) / name;
    if (fs::is_regular_file(p)) return p.string();
  }
  engine::fail(cat("Fashion-MNIST: neither ", base, ".gz nor ", base, " is in ", dir,
                   (fs::is_directory(dir) ? "" : " (the folder does not exist)"),
                   ". Install the Debian package dataset-fashion-mnist (files in ", kDefaultDataDir,
                   ") or pass --data DIR with the four IDX files."));
}

FashionMnist load_fashion_mnist(const std::string& dir) {
  FashionMnist d;
  d.train = load_idx_pair(find_idx_file(dir, "train-images-idx3-ubyte"), find_idx_file(dir, "train-labels-idx1-ubyte"));
  d.test = load_idx_pair(find_idx_file(dir, "t10k-images-idx3-ubyte"), find_idx_file(dir, "t10k-labels-idx1-ubyte"));
  for (const LabeledImages* s : {&d.train, &d.test})
    ENGINE_CHECK(s->rows == 28 && s->cols == 28, "Fashion-MNIST in ", dir, ": images are ", s->rows, "x", s->cols,
                 ", expected 28x28");
  return d;
}

}  // namespace app
