// A tiny safetensors reader for the golden files (tests/golden/*.safetensors, written by make_golden.py):
// an 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__":
// {key: string}}, then raw little-endian data. Only what those files use: F32, F64 and I32 tensors.
// Kept separate from engine/checkpoint so that the golden test does not depend on the code under test.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace testing {

struct GoldenTensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<double> values;  // converted from the stored dtype
};

struct GoldenFile {
  std::map<std::string, GoldenTensor> tensors;
  std::map<std::string, std::string> metadata;
  const GoldenTensor& at(const std::string& name) const;  // throws naming the file's tensor when missing
  std::string path;
};

GoldenFile read_golden(const std::string& path);
// The elements make_golden.py samples from a tensor of n values: all when n <= samples, else (k * stride) mod n.
std::vector<double> golden_samples(const std::vector<double>& all, int64_t samples, int64_t stride);

}  // namespace testing
