#include "apps/common/metrics.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "apps/common/files.h"
#include "engine/error.h"
#include "engine/json_strict.h"
#include "engine/ops/common.h"
#include "engine/ops.h"

namespace app {

using engine::cat;
using engine::Tensor;

MetricsAccumulator::MetricsAccumulator(int classes, engine::Device device, double loss_bound)
    : classes_(classes), loss_bound_(loss_bound) {
  ENGINE_CHECK(classes > 0, "MetricsAccumulator: classes must be positive");
  ENGINE_CHECK(loss_bound > 0, "MetricsAccumulator: the loss bound must be positive");
  acc_ = Tensor::zeros({kernels::kMetricsHeader + 2 * classes}, engine::DType::f64, device);
  reset();
}

void MetricsAccumulator::reset() {
  acc_.fill_(0.0);
  restore(0, 0, 0);
}

void MetricsAccumulator::restore(double loss_sum, double correct, double count) {
  Tensor head = acc_.to(engine::Device::cpu()).clone();
  double* h = head.data<double>();
  h[0] = loss_sum;
  h[1] = correct;
  h[2] = count;
  h[3] = -1;
  h[4] = 0;
  acc_.copy_(head);
}

void MetricsAccumulator::add(const Tensor& logits, const Tensor& labels, const Tensor& loss, int64_t step) {
  ENGINE_CHECK(logits.dim() == 2 && logits.size(1) == classes_, "metrics: logits ", logits.str(), " should be [n, ",
               classes_, "]");
  ENGINE_CHECK(labels.dtype() == engine::DType::i32 && labels.dim() == 1 && labels.size(0) == logits.size(0),
               "metrics: labels ", labels.str(), " should be int32 [", logits.size(0), "]");
  ENGINE_CHECK(logits.device() == acc_.device() && labels.device() == acc_.device(), "metrics: tensors on ",
               logits.device().str(), " but the accumulator is on ", acc_.device().str());
  if (loss.defined())
    ENGINE_CHECK(loss.numel() == 1 && loss.dtype() == logits.dtype() && loss.device() == acc_.device(),
                 "metrics: loss ", loss.str(), " should be one value like the logits");
  engine::accumulate_batch_metrics(logits, labels, loss, loss_bound_, step, acc_);
}

MetricsAccumulator::Totals MetricsAccumulator::read() const {
  engine::check_device_errors(acc_.device());  // a bad label seen on the GPU since the last read is raised here
  std::vector<double> v = acc_.to_vector();
  Totals t;
  t.loss_sum = v[0];
  t.correct = v[1];
  t.count = v[2];
  t.first_bad_step = static_cast<int64_t>(v[3]);
  t.first_bad_loss = v[4];
  const int h = kernels::kMetricsHeader;
  t.class_correct.assign(v.begin() + h, v.begin() + h + classes_);
  t.class_total.assign(v.begin() + h + classes_, v.begin() + h + 2 * classes_);
  return t;
}

// ---------------- records ----------------
std::string exact(double v) { return fmt::format("{}", v); }  // fmt's default: the shortest that reads back the same

namespace {
// A CSV cell: empty for NaN (no value), else six significant digits or `decimals` fixed.
std::string csv_cell(double v, int decimals = -1) {
  if (std::isnan(v)) return "";
  return decimals < 0 ? fmt::format("{:.6g}", v) : fmt::format("{:.{}f}", v, decimals);
}
// nlohmann writes NaN and infinities as null too; said here so that a reader sees it.
nlohmann::ordered_json json_num(double v) {
  return std::isfinite(v) ? nlohmann::ordered_json(v) : nlohmann::ordered_json(nullptr);
}

double num_or_nan(const nlohmann::json& v, const char* key) {
  const auto x = v.find(key);
  if (x == v.end() || x->is_null()) return NAN;
  return engine::json_double(*x, key);
}
}  // namespace

std::string metrics_csv_header() {
  return "epoch,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc,lr,examples_per_sec,epoch_seconds,"
         "elapsed_seconds";
}

std::string to_csv_row(const EpochRecord& r) {
  return fmt::format("{},{},{},{},{},{},{},{},{},{},{}", r.epoch, csv_cell(r.train_loss), csv_cell(r.train_acc),
                     csv_cell(r.val_loss), csv_cell(r.val_acc), csv_cell(r.test_loss), csv_cell(r.test_acc),
                     csv_cell(r.lr), csv_cell(r.examples_per_sec, 1), csv_cell(r.epoch_seconds, 2),
                     csv_cell(r.elapsed_seconds, 2));
}

std::string to_json_line(const EpochRecord& r) {
  // ordered_json: the keys in the order of metrics.csv's columns.
  return nlohmann::ordered_json{{"epoch", r.epoch},
                                {"train_loss", json_num(r.train_loss)},
                                {"train_acc", json_num(r.train_acc)},
                                {"val_loss", json_num(r.val_loss)},
                                {"val_acc", json_num(r.val_acc)},
                                {"test_loss", json_num(r.test_loss)},
                                {"test_acc", json_num(r.test_acc)},
                                {"lr", json_num(r.lr)},
                                {"examples_per_sec", json_num(r.examples_per_sec)},
                                {"epoch_seconds", json_num(r.epoch_seconds)},
                                {"elapsed_seconds", json_num(r.elapsed_seconds)}}
      .dump();
}

EpochRecord record_from_json(const nlohmann::json& v) {
  ENGINE_CHECK(v.is_object(), "metrics record is ", v.type_name(), ", not an object");
  EpochRecord r;
  const auto e = v.find("epoch");
  ENGINE_CHECK(e != v.end(), "metrics record without \"epoch\"");
  r.epoch = engine::json_int64(*e, "epoch");
  r.train_loss = num_or_nan(v, "train_loss");
  r.train_acc = num_or_nan(v, "train_acc");
  r.val_loss = num_or_nan(v, "val_loss");
  r.val_acc = num_or_nan(v, "val_acc");
  r.test_loss = num_or_nan(v, "test_loss");
  r.test_acc = num_or_nan(v, "test_acc");
  r.lr = num_or_nan(v, "lr");
  r.examples_per_sec = num_or_nan(v, "examples_per_sec");
  r.epoch_seconds = num_or_nan(v, "epoch_seconds");
  r.elapsed_seconds = num_or_nan(v, "elapsed_seconds");
  return r;
}

std::vector<EpochRecord> read_metrics_csv(const std::string& path) {
  std::ifstream in(path);
  ENGINE_CHECK(in, path, ": cannot open (is this a run folder written by train_fmnist?)");
  std::string line;
  std::getline(in, line);
  ENGINE_CHECK(line == metrics_csv_header(), path, ": unexpected header '", line, "'");
  std::vector<EpochRecord> out;
  int line_no = 1;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    std::vector<double> f;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) f.push_back(cell.empty() ? NAN : std::strtod(cell.c_str(), nullptr));
    if (!line.empty() && line.back() == ',') f.push_back(NAN);
    ENGINE_CHECK(f.size() == 11, path, ":", line_no, ": expected 11 columns, found ", f.size());
    EpochRecord r;
    r.epoch = static_cast<int64_t>(f[0]);
    r.train_loss = f[1];
    r.train_acc = f[2];
    r.val_loss = f[3];
    r.val_acc = f[4];
    r.test_loss = f[5];
    r.test_acc = f[6];
    r.lr = f[7];
    r.examples_per_sec = f[8];
    r.epoch_seconds = f[9];
    r.elapsed_seconds = f[10];
    out.push_back(r);
  }
  return out;
}

void write_metrics_files(const std::string& dir, const std::vector<EpochRecord>& history) {
  std::string csv = metrics_csv_header() + "\n", jsonl;
  for (const auto& r : history) {
    csv += to_csv_row(r) + "\n";
    jsonl += to_json_line(r) + "\n";
  }
  // Each file through a checked, atomic write: a failure (a full disk) names the file that failed.
  write_file_atomic(dir + "/metrics.csv", csv);
  write_file_atomic(dir + "/metrics.jsonl", jsonl);
}

}  // namespace app
