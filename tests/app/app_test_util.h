// Helpers for the app tests: a temporary folder removed at scope exit, small IDX files, and a synthetic
// Fashion-MNIST-shaped dataset whose classes a tiny network can tell apart.
#pragma once
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "apps/common/fmnist.h"

namespace apptest {

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("engine_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string str() const { return path_.string(); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// The whole file as a string ("" when it cannot be read).
inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void put_be32(std::vector<uint8_t>& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(v >> s));
}

inline std::vector<uint8_t> idx_images(uint32_t count, uint32_t rows, uint32_t cols, const std::vector<uint8_t>& px,
                                       uint32_t magic = 0x00000803) {
  std::vector<uint8_t> b;
  put_be32(b, magic);
  put_be32(b, count);
  put_be32(b, rows);
  put_be32(b, cols);
  b.insert(b.end(), px.begin(), px.end());
  return b;
}

inline std::vector<uint8_t> idx_labels(uint32_t count, const std::vector<uint8_t>& labels,
                                       uint32_t magic = 0x00000801) {
  std::vector<uint8_t> b;
  put_be32(b, magic);
  put_be32(b, count);
  b.insert(b.end(), labels.begin(), labels.end());
  return b;
}

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes, bool gz) {
  if (gz) {
    gzFile f = gzopen(path.c_str(), "wb");
    gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(f);
  } else {
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
}

// n images of 28x28: class c draws a bright horizontal bar at rows [2c, 2c+4) plus seeded noise.
inline app::LabeledImages synthetic_images(int64_t n, uint32_t seed) {
  app::LabeledImages d;
  d.count = n;
  d.rows = d.cols = 28;
  d.pixels.resize(n * 28 * 28);
  d.labels.resize(n);
  uint32_t s = seed * 2654435761u + 12345u;
  for (int64_t i = 0; i < n; ++i) {
    int c = static_cast<int>((i * 7 + seed) % 10);
    d.labels[i] = c;
    for (int y = 0; y < 28; ++y)
      for (int x = 0; x < 28; ++x) {
        s = s * 1664525u + 1013904223u;
        int v = static_cast<int>(s >> 27);  // noise 0..31
        if (y >= 2 * c + 2 && y < 2 * c + 6 && x >= 4 && x < 24) v += 200;
        d.pixels[(i * 28 + y) * 28 + x] = static_cast<uint8_t>(v);
      }
  }
  return d;
}

}  // namespace apptest
