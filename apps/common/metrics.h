// Loss/accuracy bookkeeping: a device-side accumulator (read only when someone wants numbers) and the per-epoch
// records written to metrics.csv / metrics.jsonl.
#pragma once
#include <cmath>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace app {

class MetricsAccumulator {
 public:
  // A batch loss that is not finite or exceeds `loss_bound` marks the step as bad (see divergence_bound()).
  MetricsAccumulator(int classes, engine::Device device, double loss_bound = INFINITY);
  void reset();
  // Adds one batch: logits [n, classes], labels [n] int32, loss a one-element tensor (batch mean) or undefined.
  // No host sync. The first bad `step` and its loss are remembered.
  void add(const engine::Tensor& logits, const engine::Tensor& labels, const engine::Tensor& loss, int64_t step);

  struct Totals {
    double loss_sum = 0, correct = 0, count = 0;
    int64_t first_bad_step = -1;  // first step whose loss was not finite or above the bound; -1: none
    double first_bad_loss = 0;
    std::vector<double> class_correct, class_total;
    double loss() const { return count > 0 ? loss_sum / count : 0.0; }
    double accuracy() const { return count > 0 ? correct / count : 0.0; }
  };
  Totals read() const;  // copies to the host: a sync on CUDA
  // Sets the running sums (resuming mid-epoch).
  void restore(double loss_sum, double correct, double count);

 private:
  int classes_;
  double loss_bound_;
  engine::Tensor acc_;  // float64 [kMetricsHeader + 2 * classes]
};

// One row of metrics.csv. Values that do not apply (no validation split) are NaN and written empty / null.
struct EpochRecord {
  int64_t epoch = 0;  // 1-based
  double train_loss = 0, train_acc = 0;
  double val_loss = 0, val_acc = 0;
  double test_loss = 0, test_acc = 0;
  double lr = 0;
  double examples_per_sec = 0;
  double epoch_seconds = 0, elapsed_seconds = 0;
};

std::string metrics_csv_header();
std::string to_csv_row(const EpochRecord& r);
// One JSON object on one line; values that are NaN are written null. Doubles read back bit-identical.
std::string to_json_line(const EpochRecord& r);
// Reads what to_json_line wrote (null or a missing key reads as NaN); a non-object, an "epoch" that is not an
// integer or a value that is not a number throws EngineError naming the key.
EpochRecord record_from_json(const nlohmann::json& v);
// Reads metrics.csv written by to_csv_row (for plot_runs).
std::vector<EpochRecord> read_metrics_csv(const std::string& path);
// Rewrites <dir>/metrics.csv and <dir>/metrics.jsonl from the whole history.
void write_metrics_files(const std::string& dir, const std::vector<EpochRecord>& history);

// The shortest text that reads back as the same double (fmt's default for a double: 0.1, 1e-05, 3).
std::string exact(double v);

}  // namespace app
