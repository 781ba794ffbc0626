// Checkpoints as safetensors files (https://github.com/huggingface/safetensors format): an 8-byte little-endian
// header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {string: string}}, then the
// raw little-endian bytes. A module's parameters and buffers keep their names ("layer1.0.conv1.weight",
// "bn1.running_mean"), which are torchvision's, so `safetensors.torch.load_file` + `load_state_dict` read them.
// Files are written to a temporary name in the same folder and renamed, so a crash never leaves half a file.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/nn/module.h"
#include "engine/optim/sgd.h"
#include "engine/tensor.h"

namespace engine {

using Metadata = std::map<std::string, std::string>;

// One tensor as it lies in the file: host bytes in little-endian order.
struct StoredTensor {
  std::string dtype;  // safetensors dtype: "F32", "F64", "BF16", "I32", "I64", "U8"
  Shape shape;
  std::vector<char> bytes;

  static StoredTensor from(const Tensor& t);  // copies to the host
  Tensor to_tensor() const;                   // F32/F64/BF16/I32 as a CPU tensor; other dtypes throw
};

struct SafetensorsFile {
  std::vector<std::pair<std::string, StoredTensor>> tensors;  // in file order
  Metadata metadata;
  const StoredTensor* find(const std::string& name) const;
};

// Writes atomically (temp file + fsync + rename). Tensor names must be unique and not "__metadata__".
void write_safetensors(const std::string& path, const SafetensorsFile& file);
// Reads and validates (header JSON, dtypes, shapes against byte ranges, ranges inside the file, no overlap);
// errors name the file and what is wrong. Anything but a regular file (a directory, a FIFO) is refused.
SafetensorsFile read_safetensors(const std::string& path);
// The same from a whole file's bytes in memory (read_safetensors reads the file, then calls this); `name`
// stands for the file in errors.
SafetensorsFile parse_safetensors(std::string_view bytes, const std::string& name);
// Only the header's __metadata__ (cheap: does not read the tensor bytes).
Metadata read_safetensors_metadata(const std::string& path);

// Name prefix of the optimizer's momentum buffers: "optimizer.momentum.<parameter name>".
inline constexpr char kMomentumPrefix[] = "optimizer.momentum.";

// Saves the model's named parameters and buffers and, when `opt` is given, its defined momentum buffers.
// `num_batches_tracked` >= 0 also writes "<bn>.num_batches_tracked" (int64) beside every BatchNorm's running
// statistics, as torchvision's state_dict has them, so the file loads into torchvision with strict=True once
// the optimizer entries are dropped.
// `extra` tensors (the weight averages "ema.<name>" of engine/optim/ema.h) are written after them as given.
void save_checkpoint(const std::string& path, const nn::Module& model, const optim::SGD* opt, const Metadata& metadata,
                     int64_t num_batches_tracked = -1, const nn::NamedTensors& extra = {});

// Loads parameters and buffers into `model` (converted to each slot's dtype and device). Every model tensor must
// be present with its shape; unknown names other than optimizer entries, weight averages ("ema.<model tensor>",
// read by optim::ModelEma::load) and num_batches_tracked are an error (it is another model). With `opt`, its momentum
// buffers are restored (those absent stay undefined: the parameter had not been stepped). Returns the metadata.
Metadata load_checkpoint(const std::string& path, nn::Module& model, optim::SGD* opt = nullptr);

}  // namespace engine
