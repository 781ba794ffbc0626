#include "engine/random.h"

namespace engine {

Generator& default_generator() {
  static Generator g(0);
  return g;
}

namespace {
template <class Dist>
void fill_from(Tensor& t, Dist dist, Generator& g) {
  std::vector<double> v(t.numel());
  for (double& x : v) x = dist(g.engine());
  t.copy_(Tensor::from_vector(v, t.shape(), t.dtype(), Device::cpu()));
}
}  // namespace

void normal_(Tensor& t, double mean, double stddev, Generator& g) {
  fill_from(t, std::normal_distribution<double>(mean, stddev), g);
}

void uniform_(Tensor& t, double low, double high, Generator& g) {
  fill_from(t, std::uniform_real_distribution<double>(low, high), g);
}

Tensor randn(const Shape& shape, DType dtype, Device device, Generator& g) {
  Tensor t = Tensor::empty(shape, dtype, device);
  normal_(t, 0.0, 1.0, g);
  return t;
}

}  // namespace engine
