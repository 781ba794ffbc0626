// Line charts like d2l's training figures and the paper's error curves, drawn by cairo: one drawing routine
// renders a Figure onto a PNG, SVG or PDF surface, so every format shows the same picture. Text is set in
// DejaVu Sans (Debian fonts-dejavu-core) through cairo's toy font API.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "apps/common/metrics.h"
#include "apps/common/step_log.h"

namespace app {

struct TrainConfig;

enum class Dash { solid, dashed, dashdot, dotted };

struct Series {
  std::string label;         // empty: not in the legend
  std::vector<double> x, y;  // a non-finite value (or y <= 0 on a log axis) breaks the line
  uint32_t rgb = 0x1f77b4;
  double width = 2;  // pixels (points in SVG/PDF)
  Dash dash = Dash::solid;
  bool markers = false;  // a dot at every point (useful with few points)
};
// A series with a label and no points is a legend entry only (plot_runs: one per run colour, one per line style).

struct Axes {
  std::string title, xlabel, ylabel;
  std::vector<Series> series;
  double x_min = NAN, x_max = NAN, y_min = NAN, y_max = NAN;  // NaN: from the data
  bool integer_x = false;                                     // ticks on whole numbers only (epochs)
  bool log_y = false;
  bool legend = true;
};

// Panels side by side under an optional title (bold) and subtitle (smaller, wrapped to the width).
struct Figure {
  int width = 640, height = 440;  // pixels of the PNG (times `scale`); points of the SVG and PDF
  double scale = 1;               // PNG pixels per unit: 2 for sharp figures on high-density screens
  std::string title, subtitle;
  std::vector<Axes> panels;
  bool share_x = false, share_y = false;  // the same ranges in every panel (ranges not fixed by a panel)
};

// matplotlib's default colour cycle.
uint32_t palette(size_t i);

// Tick positions covering [lo, hi] with a 1-2-5 step, about `target` of them.
std::vector<double> nice_ticks(double lo, double hi, int target, bool integer);
// Ticks of a log axis over [lo, hi] (lo > 0): 1-2-5 times powers of ten, only the powers when the range is wide.
std::vector<double> log_ticks(double lo, double hi);

// The figure as the bytes of a file: format "png", "svg" or "pdf".
std::string render_figure(const Figure& fig, const std::string& format);
// Writes `fig` atomically; the format follows the extension of `path` (.png, .svg or .pdf).
void save_figure(const Figure& fig, const std::string& path);
// The PNG rendering as (scale * width) * (scale * height) * 3 RGB bytes (for tests).
std::vector<uint8_t> render_rgb(const Figure& fig);

// ---------------- runs (train_fmnist output folders) ----------------

// What one run folder holds for plotting: metrics.csv (required) and steps.csv (when the run wrote one).
struct RunData {
  std::string dir, label;
  std::vector<EpochRecord> epochs;
  std::vector<StepRecord> steps;
  int64_t steps_per_epoch = 0;  // from steps.csv; 0 without one
};
RunData load_run(const std::string& dir, const std::string& label);

// What plot_runs and runs_figure draw. Metrics: train_loss, train_error, train_acc (every K steps from
// steps.csv, per epoch without one), val_* and test_* (per epoch), lr. Errors and accuracies are in %.
struct RunPlotOptions {
  std::vector<std::string> metrics = {"train_error", "test_error"};
  std::string x = "iterations";  // iterations | epochs
  bool log_y = false;
  double y_min = NAN, y_max = NAN;  // NaN: from the data (a linear axis starts at 0)
  // Training curves from steps.csv: each point the mean of the logged windows of the last `smooth` iterations
  // (0 or 1: as logged), as the paper's thin curves average out the batch-to-batch noise.
  int64_t smooth = 0;
  std::string title, subtitle;
  int panel_width = 560, height = 440;
  double scale = 1;  // Figure::scale
};
const std::vector<std::string>& run_metric_names();

// One panel per group of runs with the same metrics and the same axes in every panel: the paper's Fig. 6 is
// runs_figure({plain_runs, residual_runs}, {"plain", "ResNet"}, {}) (thin dashed training error, bold test error,
// against iterations). Colours follow a run's position in its panel, line styles the metric. Throws naming the
// run when a metric or x axis needs data it lacks (an x of iterations needs steps.csv).
Figure runs_figure(const std::vector<std::vector<RunData>>& panels, const std::vector<std::string>& panel_titles,
                   const RunPlotOptions& opt);

// "resnet20\nlr 0.1 step, batch 128, 28 px, ..." for a run's figure: the model, then the recipe.
std::string run_title(const TrainConfig& cfg);
// Writes <dir>/curves.png and curves.svg for one run, as d2l's animator: train loss and train accuracy every K
// steps (from <dir>/steps.csv, else per epoch), validation and test accuracy per epoch, against the epoch.
// `title`: first line the title, the rest a subtitle. `epochs`: the x axis spans the whole run from its first
// epoch on (0: only the epochs done).
void plot_run_curves(const std::string& dir, const std::string& title, const std::vector<EpochRecord>& history,
                     int64_t epochs = 0);

}  // namespace app
