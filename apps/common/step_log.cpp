#include "apps/common/step_log.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "apps/common/files.h"
#include "apps/common/metrics.h"
#include "engine/error.h"

namespace app {

using engine::cat;

std::string steps_csv_header() { return "iteration,epoch,train_loss,train_acc,lr,steps,examples,elapsed_seconds"; }

std::string to_csv_row(const StepRecord& r) {
  // exact(): a resumed run writes the same text as an uninterrupted one, and readers get the doubles back.
  return cat(r.iteration, ",", exact(r.epoch), ",", exact(r.train_loss), ",", exact(r.train_acc), ",", exact(r.lr), ",",
             r.steps, ",", r.examples, ",", exact(std::round(r.elapsed_seconds * 100) / 100));
}

std::vector<StepRecord> read_steps_csv(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  ENGINE_CHECK(in, path, ": cannot open (a run folder written by train_fmnist before steps.csv existed?)");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  std::vector<StepRecord> out;
  size_t at = 0;
  int line_no = 0;
  while (at < text.size()) {
    const size_t end = text.find('\n', at);
    if (end == std::string::npos) break;  // an unfinished last line: the append was cut short
    const std::string line = text.substr(at, end - at);
    at = end + 1;
    if (++line_no == 1) {
      ENGINE_CHECK(line == steps_csv_header(), path, ": unexpected header '", line, "'");
      continue;
    }
    if (line.empty()) continue;
    std::vector<std::string> cells;
    std::stringstream ls(line);
    std::string cell;
    while (std::getline(ls, cell, ',')) cells.push_back(cell);
    ENGINE_CHECK(cells.size() == 8, path, ":", line_no, ": expected 8 columns, found ", cells.size());
    auto num = [&](size_t i) {
      char* e = nullptr;
      const double v = std::strtod(cells[i].c_str(), &e);
      ENGINE_CHECK(!cells[i].empty() && *e == '\0', path, ":", line_no, ": column ", i + 1, " '", cells[i],
                   "' is not a number");
      return v;
    };
    StepRecord r;
    r.iteration = static_cast<int64_t>(num(0));
    r.epoch = num(1);
    r.train_loss = num(2);
    r.train_acc = num(3);
    r.lr = num(4);
    r.steps = static_cast<int64_t>(num(5));
    r.examples = static_cast<int64_t>(num(6));
    r.elapsed_seconds = num(7);
    out.push_back(r);
  }
  ENGINE_CHECK(line_no >= 1, path, ": empty file (no header)");
  return out;
}

int64_t log_interval(int64_t log_every, int64_t steps_per_epoch) {
  if (log_every > 0) return log_every;
  return std::max<int64_t>(1, steps_per_epoch / 25);
}

StepLog::StepLog(const std::string& dir, int64_t steps_per_epoch, int64_t interval, const std::string& resume,
                 int64_t iteration)
    : path_(dir + "/steps.csv"), steps_per_epoch_(steps_per_epoch), interval_(interval) {
  ENGINE_CHECK(steps_per_epoch > 0 && interval > 0, "StepLog: ", steps_per_epoch, " steps per epoch, a record every ",
               interval);
  std::string text = steps_csv_header() + "\n";
  if (!resume.empty()) {
    const std::string from = (std::filesystem::path(resume).parent_path() / "steps.csv").string();
    std::ifstream probe(from);
    if (!probe) {
      note_ = cat(from, " is missing: ", path_, " starts at iteration ", iteration + 1);
    } else {
      for (const StepRecord& r : read_steps_csv(from))
        if (r.iteration <= iteration) text += to_csv_row(r) + "\n";
    }
  }
  write_file_atomic(path_, text);
  file_ = std::fopen(path_.c_str(), "ab");
  ENGINE_CHECK(file_, "cannot write ", path_, ": ", std::strerror(errno));
}

StepLog::~StepLog() {
  if (file_) std::fclose(file_);
}

void StepLog::record(int64_t epoch, int64_t step, int64_t iteration, double lr, double loss_sum, double correct,
                     double count, double elapsed_seconds) {
  StepRecord r;
  r.iteration = iteration;
  r.epoch = epoch + static_cast<double>(step + 1) / steps_per_epoch_;
  const double n = count - start_.count;
  r.train_loss = n > 0 ? (loss_sum - start_.loss_sum) / n : NAN;
  r.train_acc = n > 0 ? (correct - start_.correct) / n : NAN;
  r.lr = lr;
  r.steps = step + 1 - start_.step;
  r.examples = static_cast<int64_t>(std::llround(n));
  r.elapsed_seconds = elapsed_seconds;
  // One line per write, flushed: a reader (plot_runs during training) sees whole records.
  const std::string line = to_csv_row(r) + "\n";
  const bool ok = std::fwrite(line.data(), 1, line.size(), file_) == line.size() && std::fflush(file_) == 0;
  ENGINE_CHECK(ok, "cannot write ", path_, ": ", std::strerror(errno));
  start_ = {loss_sum, correct, count, step + 1};
}

}  // namespace app
