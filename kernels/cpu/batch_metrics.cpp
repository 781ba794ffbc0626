#include "kernels/batch_metrics.h"

#include <cmath>

namespace kernels::cpu {

template <class T>
void accumulate_batch_metrics(const T* logits, const int32_t* labels, int64_t n, int64_t classes,
                              const compute_t<T>* loss, double loss_bound, int64_t step, double* acc) {
  double* class_correct = acc + kMetricsHeader;
  double* class_total = class_correct + classes;
  int64_t correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    const T* row = logits + i * classes;
    int64_t best = 0;
    for (int64_t c = 1; c < classes; ++c)
      if (row[c] > row[best]) best = c;
    const int32_t y = labels[i];
    const bool hit = best == y;
    correct += hit;
    if (y >= 0 && y < classes) {
      class_correct[y] += hit;
      class_total[y] += 1;
    }
  }
  acc[1] += static_cast<double>(correct);
  acc[2] += static_cast<double>(n);
  if (loss) {
    const double l = static_cast<double>(*loss);
    acc[0] += l * static_cast<double>(n);
    if (!(std::isfinite(l) && l <= loss_bound) && acc[3] < 0) {
      acc[3] = static_cast<double>(step);
      acc[4] = l;
    }
  }
}

KERNELS_BATCH_METRICS_INSTANTIATIONS

}  // namespace kernels::cpu
