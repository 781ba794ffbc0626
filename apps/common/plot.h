// Line charts like d2l's training figures and the paper's error curves, drawn twice from one layout: a PNG
// through a tiny anti-aliased rasteriser with a built-in 5x7 bitmap font, and an SVG.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace app {

enum class Dash { solid, dashed, dashdot, dotted };

struct Series {
  std::string label;         // empty: not in the legend
  std::vector<double> x, y;  // NaN y values break the line
  uint32_t rgb = 0x1f77b4;
  double width = 2;  // pixels
  Dash dash = Dash::solid;
  bool markers = false;  // a dot at every point (useful with few points)
};

struct Axes {
  std::string title, xlabel, ylabel;
  std::vector<Series> series;
  double x_min = NAN, x_max = NAN, y_min = NAN, y_max = NAN;  // NaN: from the data
  bool integer_x = false;                                     // ticks on whole numbers only (epochs)
  bool legend = true;
};

// Panels side by side.
struct Figure {
  int width = 640, height = 440;
  std::vector<Axes> panels;
};

// matplotlib's default colour cycle.
uint32_t palette(size_t i);

std::vector<uint8_t> render_rgb(const Figure& fig);  // width * height * 3 bytes
void save_png(const Figure& fig, const std::string& path);
std::string render_svg(const Figure& fig);
void save_svg(const Figure& fig, const std::string& path);

// Tick positions covering [lo, hi] with a 1-2-5 step, about `target` of them.
std::vector<double> nice_ticks(double lo, double hi, int target, bool integer);

}  // namespace app
