// Training metrics within an epoch: every K steps, the loss and accuracy averaged over the steps since the last
// record, appended to <run>/steps.csv. Windows never span epochs (the last one of an epoch may be shorter), so
// the records of a resumed run are exactly those of an uninterrupted one.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace app {

// One row of steps.csv.
struct StepRecord {
  int64_t iteration = 0;                 // optimizer steps done in the run, counting this window's last
  double epoch = 0;                      // fractional: 1.5 = half-way through the second epoch
  double train_loss = 0, train_acc = 0;  // means over the window's examples
  double lr = 0;                         // of the window's last step
  int64_t steps = 0;                     // steps in the window
  int64_t examples = 0;                  // examples in the window
  double elapsed_seconds = 0;            // since the run started, across resumes
  double train_error() const { return 1 - train_acc; }
};

std::string steps_csv_header();
std::string to_csv_row(const StepRecord& r);
// Reads steps.csv. A last line without its newline (a process killed while appending) is dropped; any other
// malformed line throws naming the file and line.
std::vector<StepRecord> read_steps_csv(const std::string& path);

// Steps per record: `log_every`, or for 0 about 25 records per epoch.
int64_t log_interval(int64_t log_every, int64_t steps_per_epoch);

// Running sums of the training accumulator (MetricsAccumulator::Totals) at the start of the current window.
struct WindowStart {
  double loss_sum = 0, correct = 0, count = 0;
  int64_t step = 0;  // step in the epoch where the window starts
};

class StepLog {
 public:
  // Opens <dir>/steps.csv for a run with `steps_per_epoch` steps, one record every `interval` steps. A fresh run
  // (`resume` empty) starts the file; one resumed from checkpoint `resume` keeps the records of the steps.csv
  // beside that checkpoint up to `iteration` (the checkpoint's) and drops later ones (written after that
  // checkpoint was), then continues. If that file is missing, note() says so and the new file starts empty.
  StepLog(const std::string& dir, int64_t steps_per_epoch, int64_t interval, const std::string& resume,
          int64_t iteration);
  ~StepLog();
  StepLog(const StepLog&) = delete;
  StepLog& operator=(const StepLog&) = delete;

  // Whether 0-based `step` of an epoch closes a window.
  bool due(int64_t step) const { return (step + 1) % interval_ == 0 || step + 1 == steps_per_epoch_; }
  void start_epoch(const WindowStart& w) { start_ = w; }
  const WindowStart& window_start() const { return start_; }
  // Appends the record of the window ending at 0-based (epoch, step), given the accumulator's sums now.
  void record(int64_t epoch, int64_t step, int64_t iteration, double lr, double loss_sum, double correct, double count,
              double elapsed_seconds);
  const std::string& path() const { return path_; }
  const std::string& note() const { return note_; }

 private:
  std::string path_, note_;
  int64_t steps_per_epoch_, interval_;
  WindowStart start_;
  FILE* file_ = nullptr;
};

}  // namespace app
