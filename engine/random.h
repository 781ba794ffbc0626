// Seeded random fills. Values are drawn on the host in a fixed order and copied to the tensor's device, so a
// seed gives the same numbers on CPU and CUDA.
#pragma once
#include <cstdint>
#include <random>

#include "engine/tensor.h"

namespace engine {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : rng_(seed) {}
  void seed(uint64_t s) { rng_.seed(s); }
  std::mt19937_64& engine() { return rng_; }

 private:
  std::mt19937_64 rng_;
};

// The process-wide generator used by default initialisers; apps seed it from --seed.
Generator& default_generator();

void normal_(Tensor& t, double mean, double stddev, Generator& g = default_generator());
void uniform_(Tensor& t, double low, double high, Generator& g = default_generator());
Tensor randn(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu(),
             Generator& g = default_generator());

}  // namespace engine
