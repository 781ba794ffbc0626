// Multi-tensor launches (SGD, EMA): a table of up to kMultiTensorMax entries goes to the kernel by value,
// blockIdx.y picks the entry and a grid-stride loop over x covers its `n` elements. ResNet-50's 161 parameters
// take 3 launches.
#pragma once
#include <algorithm>
#include <cstdint>

#include "kernels/cuda/common.cuh"

namespace kernels::cuda {

constexpr int kMultiTensorMax = 64;
constexpr int kMultiTensorBlock = 256;

template <class Entry>
struct TensorTable {
  Entry t[kMultiTensorMax];
};

// Calls launch(table, grid) once per chunk of up to kMultiTensorMax entries, then checks the launch.
template <class Entry, class Launch>
void for_each_tensor_chunk(const Entry* entries, int count, Launch&& launch) {
  for (int start = 0; start < count; start += kMultiTensorMax) {
    const int m = std::min(count - start, kMultiTensorMax);
    TensorTable<Entry> table{};
    int64_t max_n = 1;
    for (int i = 0; i < m; ++i) {
      table.t[i] = entries[start + i];
      max_n = std::max<int64_t>(max_n, table.t[i].n);
    }
    // The grid-stride loop covers the rest; the cap keeps small tensors from idling many blocks.
    const unsigned gx = std::min(grid_for(max_n, kMultiTensorBlock), 1024u);
    launch(table, dim3(gx, m));
    CUDA_CHECK_LAUNCH();
  }
}

}  // namespace kernels::cuda
