// The text the programs print, now written by fmt: the exact strings of error pieces, the progress bar, the
// per-class table, the CSV row and the number forms that are read back, so that a change of format is a
// deliberate one. The expected strings are what the printf/iostream code before fmt wrote.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "apps/common/metrics.h"
#include "apps/common/progress.h"
#include "apps/common/trainer.h"
#include "engine/error.h"
#include "engine/tensor.h"
#include "models/registry.h"
#include "models/summary.h"

using Catch::Contains;
using Catch::EndsWith;
using Catch::Matches;
using Catch::StartsWith;

namespace {
// Everything written to `f` so far.
std::string contents(std::FILE* f) {
  std::fflush(f);
  std::rewind(f);
  std::string s;
  for (int c; (c = std::fgetc(f)) != EOF;) s += static_cast<char>(c);
  return s;
}
}  // namespace

TEST_CASE("cat: numbers as iostream wrote them (floats as %g, six significant digits)", "[format]") {
  REQUIRE(engine::cat("lr ", 0.1, ", n ", 3, ", sum ", 0.1 + 0.2, ", big ", 1e6, ", small ", 1e-5, ", f ", 0.1f, ", u ",
                      uint64_t(18446744073709551615ull), ", s ", std::string("x"), ", c ",
                      'c') == "lr 0.1, n 3, sum 0.3, big 1e+06, small 1e-05, f 0.1, u 18446744073709551615, s x, c c");
  REQUIRE(engine::cat(NAN, " ", -INFINITY) == "nan -inf");
  REQUIRE(engine::cat() == "");
  REQUIRE(engine::shape_str({}) == "[]");
  REQUIRE(engine::shape_str({2, 3, 4}) == "[2, 3, 4]");
}

TEST_CASE("exact: the shortest text that reads back as the same double", "[format]") {
  REQUIRE(app::exact(0.1) == "0.1");
  REQUIRE(app::exact(3) == "3");
  REQUIRE(app::exact(1e-5) == "1e-05");
  REQUIRE(app::exact(0.1 + 0.2) == "0.30000000000000004");
  for (double v : {1.0 / 3, 2.0 / 3 * 1e300, 5e-324, -123.456, 1e15, 0.0})
    REQUIRE(std::strtod(app::exact(v).c_str(), nullptr) == v);
}

TEST_CASE("metrics.csv row: six significant digits, fixed for speed and seconds, empty for no value", "[format]") {
  app::EpochRecord r;
  r.epoch = 3;
  r.train_loss = 0.5, r.train_acc = 0.25;
  r.val_loss = NAN, r.val_acc = NAN;
  r.test_loss = 1.0 / 3, r.test_acc = 0.875;
  r.lr = 1e-5;
  r.examples_per_sec = 1234.56, r.epoch_seconds = 12.5, r.elapsed_seconds = 100;
  REQUIRE(app::to_csv_row(r) == "3,0.5,0.25,,,0.333333,0.875,1e-05,1234.6,12.50,100.00");
}

TEST_CASE("progress: durations, the log line and the terminal bar", "[format]") {
  using app::ProgressBar;
  REQUIRE(ProgressBar::format_duration(0) == "0:00");
  REQUIRE(ProgressBar::format_duration(59.4) == "0:59");
  REQUIRE(ProgressBar::format_duration(59.6) == "1:00");
  REQUIRE(ProgressBar::format_duration(3725) == "1:02:05");
  REQUIRE(ProgressBar::format_duration(36000) == "10:00:00");
  REQUIRE(ProgressBar::format_duration(-1) == "?");
  REQUIRE(ProgressBar::format_duration(INFINITY) == "?");

  std::FILE* f = std::tmpfile();
  REQUIRE(f);
  {
    ProgressBar log("epoch 1/2", 10, 0, f, 0);
    log.update(5, 0.1234, 0.5, 12.34);
  }
  const std::string line = contents(f);
  // The ETA is the time taken so far (5 of 10 done): "0:00" unless this machine stalled for half a second.
  REQUIRE_THAT(line, StartsWith("epoch 1/2 5/10  loss 0.123  acc 0.500  12.3 ex/s  ETA ") && EndsWith("\n"));
  std::fclose(f);

  f = std::tmpfile();
  REQUIRE(f);
  {
    ProgressBar bar("epoch 1/2", 10, 0, f, 1);
    bar.update(5, 0.1234, 0.5, 12.34);
    bar.finish();
  }
  const std::string drawn = contents(f);
  REQUIRE_THAT(drawn,
               StartsWith("\repoch 1/2 [############............] 5/10  loss 0.123  acc 0.500  12.3 ex/s  ETA ") &&
                   EndsWith("\033[K\r\033[K"));
  std::fclose(f);
}

TEST_CASE("per-class table: one aligned line per class, nan where a class had no examples", "[format]") {
  app::EvalResult e;
  e.class_correct.assign(10, 0);
  e.class_total.assign(10, 0);
  e.class_correct[0] = 1, e.class_total[0] = 2;
  e.class_correct[9] = 1234, e.class_total[9] = 1500;
  const std::string t = app::per_class_table(e);
  REQUIRE_THAT(t, StartsWith("  T-shirt/top   0.500  (1/2)\n  Trouser       nan  (0/0)\n"));
  REQUIRE_THAT(t, EndsWith("  Ankle boot    0.823  (1234/1500)\n"));
}

TEST_CASE("run folder name: runs/<model>-<local date>-<time>", "[format]") {
  REQUIRE_THAT(app::default_out_dir("resnet20"), Matches("runs/resnet20-[0-9]{8}-[0-9]{6}"));
}

TEST_CASE("model summary: every table line as wide as the rule, numbers right-aligned", "[format][summary]") {
  auto model = models::create("resnet20");
  const std::string text = models::format_summary(models::summarize(*model, {1, 28, 28}), "resnet20");
  std::istringstream lines(text);
  std::string line, rule;
  std::vector<std::string> table;  // the header, the rows and the total
  std::getline(lines, line);
  REQUIRE(line == "resnet20, input [1, 1, 28, 28]");
  while (std::getline(lines, line))
    if (!line.empty() && line.find_first_not_of('-') == std::string::npos)
      rule = line;
    else if (table.size() < 10)
      table.push_back(line);
  REQUIRE(table.size() == 10);  // header, 8 rows, total
  REQUIRE_THAT(table[0], StartsWith("layer  ") && EndsWith("  activations"));
  REQUIRE_THAT(table[1], StartsWith("conv1  "));
  for (const auto& l : table) {
    INFO(l);
    REQUIRE(l.size() == rule.size());
  }
  REQUIRE_THAT(text, Contains("parameters 0.27 M, mult-adds 0.03 G (convs and fc, for a batch of 1)"));
}
