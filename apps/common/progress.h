// A per-epoch progress bar on stderr: batches done, running loss and accuracy, examples/sec and ETA. On a
// terminal it redraws one line at most 4 times a second; otherwise (a log file, CI) it prints a plain line at
// every 10% of the epoch, at most one every 2 seconds. due() tells the caller whether a redraw would happen, so
// it reads device-side metrics (a host sync on CUDA) only then.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace app {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, int64_t start = 0, FILE* out = stderr, int tty = -1);
  bool due(int64_t done) const;
  void update(int64_t done, double loss, double acc, double examples_per_sec);
  void finish();  // erases the bar on a terminal, so the epoch line that follows stands alone
  static std::string format_duration(double seconds);  // "1:02:03" or "2:03"

 private:
  double since_draw() const;
  std::string label_;
  int64_t total_, start_;
  FILE* out_;
  bool tty_;
  bool drawn_ = false;
  int64_t next_mark_;  // non-TTY: next 10% boundary
  std::chrono::steady_clock::time_point t0_, last_;
};

}  // namespace app
