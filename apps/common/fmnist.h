// Fashion-MNIST from its four IDX files, gzipped or raw, read from a local folder (never downloaded).
// IDX: a big-endian header (magic 0x00000803 + count, rows, cols for images; 0x00000801 + count for labels)
// followed by one unsigned byte per pixel or label. Every check names the file and what is wrong.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace app {

inline constexpr const char* kDefaultDataDir = "/usr/share/datasets/fashion-mnist";
inline constexpr int kNumClasses = 10;
// Index = label.
const std::vector<std::string>& fashion_class_names();

// The whole file, decompressed when it is gzip (detected by content, not by name).
std::vector<uint8_t> read_maybe_gz(const std::string& path);

struct IdxImages {
  int64_t count = 0;
  int rows = 0, cols = 0;
  std::vector<uint8_t> pixels;  // count * rows * cols
};
IdxImages parse_idx_images(const std::vector<uint8_t>& bytes, const std::string& name);
// Labels must lie in [0, num_classes).
std::vector<int32_t> parse_idx_labels(const std::vector<uint8_t>& bytes, const std::string& name, int num_classes);

// Images with their labels.
struct LabeledImages {
  int64_t count = 0;
  int rows = 0, cols = 0;
  std::vector<uint8_t> pixels;
  std::vector<int32_t> labels;
  // The first n examples (n <= 0 or >= count: all).
  LabeledImages head(int64_t n) const;
  // The examples at `indices`, in that order.
  LabeledImages select(const std::vector<int64_t>& indices) const;
};
LabeledImages load_idx_pair(const std::string& images_path, const std::string& labels_path,
                            int num_classes = kNumClasses);

struct FashionMnist {
  LabeledImages train, test;
};
// Looks for <name>.gz, then <name> in `dir`, for train-images-idx3-ubyte, train-labels-idx1-ubyte,
// t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte; requires 28x28 images.
FashionMnist load_fashion_mnist(const std::string& dir = kDefaultDataDir);
// The path load_fashion_mnist would read for `base`, or an error saying what was looked for.
std::string find_idx_file(const std::string& dir, const std::string& base);

}  // namespace app
