#include "apps/common/plot.h"

#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <cairo.h>

#include <algorithm>
#include <cstring>
#include <iomanip>
#include <memory>
#include <sstream>

#include "apps/common/files.h"
#include "engine/error.h"

namespace app {

using engine::cat;

uint32_t palette(size_t i) {
  static const uint32_t colors[] = {0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd,
                                    0x8c564b, 0xe377c2, 0x7f7f7f, 0xbcbd22, 0x17becf};
  return colors[i % 10];
}

std::vector<double> nice_ticks(double lo, double hi, int target, bool integer) {
  if (!(hi > lo)) hi = lo + 1;
  double raw = (hi - lo) / std::max(1, target);
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  if (integer) step = std::max(1.0, std::round(step));
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step)
    ticks.push_back(std::fabs(t) < step * 1e-9 ? 0.0 : t);
  return ticks;
}

std::vector<double> log_ticks(double lo, double hi) {
  ENGINE_CHECK(lo > 0 && hi >= lo, "log_ticks: range [", lo, ", ", hi, "] must be positive");
  std::vector<double> all, decades;
  for (int k = static_cast<int>(std::floor(std::log10(lo))); k <= static_cast<int>(std::ceil(std::log10(hi))); ++k)
    for (double m : {1.0, 2.0, 5.0}) {
      const double t = m * std::pow(10.0, k);
      if (t < lo * (1 - 1e-9) || t > hi * (1 + 1e-9)) continue;
      all.push_back(t);
      if (m == 1.0) decades.push_back(t);
    }
  return all.size() <= 9 || decades.size() < 2 ? all : decades;
}

namespace {

// ---------------- text ----------------
const char* const kFont = "DejaVu Sans";

void set_rgb(cairo_t* cr, uint32_t rgb) {
  cairo_set_source_rgb(cr, ((rgb >> 16) & 255) / 255.0, ((rgb >> 8) & 255) / 255.0, (rgb & 255) / 255.0);
}

void font(cairo_t* cr, double size, bool bold = false) {
  cairo_select_font_face(cr, kFont, CAIRO_FONT_SLANT_NORMAL, bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, size);
}

double text_width(cairo_t* cr, const std::string& s) {
  cairo_text_extents_t e;
  cairo_text_extents(cr, s.c_str(), &e);
  return e.x_advance;
}

// Text with its vertical centre at y; anchor 0 left, 1 centre, 2 right of x. Rotated: reads upwards, centred.
void text(cairo_t* cr, double x, double y, const std::string& s, int anchor, uint32_t rgb, bool rotated = false) {
  if (s.empty()) return;
  cairo_font_extents_t fe;
  cairo_font_extents(cr, &fe);
  const double w = text_width(cr, s);
  const double base = (fe.ascent - fe.descent) / 2;  // from the centre line to the baseline
  cairo_save(cr);
  set_rgb(cr, rgb);
  cairo_translate(cr, x, y);
  if (rotated) cairo_rotate(cr, -M_PI / 2);
  cairo_move_to(cr, anchor == 0 ? 0 : anchor == 1 ? -w / 2 : -w, base);
  cairo_show_text(cr, s.c_str());
  cairo_restore(cr);
}

// Greedy word wrap to `width` in the current font.
std::vector<std::string> wrap(cairo_t* cr, const std::string& s, double width) {
  std::vector<std::string> lines;
  std::istringstream words(s);
  std::string word, line;
  while (words >> word) {
    const std::string candidate = line.empty() ? word : line + " " + word;
    if (!line.empty() && text_width(cr, candidate) > width) {
      lines.push_back(line);
      line = word;
    } else {
      line = candidate;
    }
  }
  if (!line.empty()) lines.push_back(line);
  return lines;
}

std::string tick_label(double v, double step, bool log_axis) {
  std::ostringstream os;
  if (log_axis) {
    os << std::setprecision(6) << v;
    return os.str();
  }
  int decimals = 0;
  while (decimals < 6 && std::fabs(step * std::pow(10, decimals) - std::round(step * std::pow(10, decimals))) > 1e-6)
    ++decimals;
  os << std::fixed << std::setprecision(decimals) << v;
  return os.str();
}

void line_style(cairo_t* cr, double width, Dash dash) {
  cairo_set_line_width(cr, width);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
  const double w = std::max(1.0, width);
  std::vector<double> pattern;
  switch (dash) {
    case Dash::dashed:
      pattern = {5 * w, 3 * w};
      break;
    case Dash::dashdot:
      pattern = {5 * w, 2 * w, 1 * w, 2 * w};
      break;
    case Dash::dotted:
      pattern = {1 * w, 2 * w};
      break;
    case Dash::solid:
      break;
  }
  // Round caps would close the gaps of short dashes; dots are drawn as round caps of zero-length dashes.
  cairo_set_line_cap(cr, dash == Dash::dotted || dash == Dash::solid ? CAIRO_LINE_CAP_ROUND : CAIRO_LINE_CAP_BUTT);
  if (dash == Dash::dotted) pattern = {0, 2 * w};
  cairo_set_dash(cr, pattern.data(), static_cast<int>(pattern.size()), 0);
}

// ---------------- ranges ----------------
struct Range {
  double x0, x1, y0, y1;
};

// Data extent of one panel (finite points, positive y on a log axis).
void extent(const Axes& ax, double* x0, double* x1, double* y0, double* y1) {
  for (const auto& s : ax.series)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i]) || (ax.log_y && s.y[i] <= 0)) continue;
      *x0 = std::min(*x0, s.x[i]), *x1 = std::max(*x1, s.x[i]);
      *y0 = std::min(*y0, s.y[i]), *y1 = std::max(*y1, s.y[i]);
    }
}

// The ranges a panel shows: fixed ones from the Axes, the rest from the data (`shared`: the figure's extent),
// a linear y extended to whole ticks, a log y to the 1-2-5 values around the data.
Range panel_range(const Axes& ax, const double* shared_x, const double* shared_y) {
  double dx0 = INFINITY, dx1 = -INFINITY, dy0 = INFINITY, dy1 = -INFINITY;
  extent(ax, &dx0, &dx1, &dy0, &dy1);
  if (shared_x) dx0 = shared_x[0], dx1 = shared_x[1];
  if (shared_y) dy0 = shared_y[0], dy1 = shared_y[1];
  if (!std::isfinite(dx0)) dx0 = 0, dx1 = 1;
  if (!std::isfinite(dy0)) dy0 = ax.log_y ? 1 : 0, dy1 = ax.log_y ? 10 : 1;
  Range r{std::isnan(ax.x_min) ? dx0 : ax.x_min, std::isnan(ax.x_max) ? dx1 : ax.x_max,
          std::isnan(ax.y_min) ? dy0 : ax.y_min, std::isnan(ax.y_max) ? dy1 : ax.y_max};
  if (!(r.x1 > r.x0)) r.x0 -= 0.5, r.x1 += 0.5;
  if (ax.log_y) {
    if (!(r.y0 > 0)) r.y0 = dy0 > 0 ? dy0 : 1e-3;
    if (!(r.y1 > r.y0)) r.y0 /= 2, r.y1 = r.y0 * 4;
    auto down = [](double v) {  // the largest 1-2-5 value <= v
      const double p = std::pow(10.0, std::floor(std::log10(v)));
      return v >= 5 * p ? 5 * p : v >= 2 * p ? 2 * p : p;
    };
    auto up = [&](double v) {
      const double p = std::pow(10.0, std::floor(std::log10(v)));
      return v <= p * (1 + 1e-9) ? p : v <= 2 * p ? 2 * p : v <= 5 * p ? 5 * p : 10 * p;
    };
    if (std::isnan(ax.y_min)) r.y0 = down(r.y0 * (1 + 1e-9));
    if (std::isnan(ax.y_max)) r.y1 = up(r.y1);
    return r;
  }
  if (!(r.y1 > r.y0)) r.y0 -= 0.05 * (std::fabs(r.y0) + 1), r.y1 += 0.05 * (std::fabs(r.y1) + 1);
  std::vector<double> yt = nice_ticks(r.y0, r.y1, 6, false);
  if (yt.size() >= 2) {  // extend free ends to whole ticks
    const double step = yt[1] - yt[0];
    if (std::isnan(ax.y_min)) r.y0 = std::min(r.y0, std::floor(r.y0 / step + 1e-9) * step);
    if (std::isnan(ax.y_max)) r.y1 = std::max(r.y1, std::ceil(r.y1 / step - 1e-9) * step);
  }
  return r;
}

// ---------------- drawing ----------------
constexpr uint32_t kAxis = 0x444444, kGrid = 0xe5e5e5, kText = 0x222222;
constexpr double kTick = 11, kLabel = 12.5, kPanelTitle = 13.5, kTitle = 15, kSubtitle = 11;

void draw_axes(cairo_t* cr, const Axes& ax, const Range& rg, double left, double top, double width, double height) {
  const std::vector<double> yt = ax.log_y ? log_ticks(rg.y0, rg.y1) : nice_ticks(rg.y0, rg.y1, 6, false);
  const std::vector<double> xt = nice_ticks(rg.x0, rg.x1, std::max(3, static_cast<int>(width / 80)), ax.integer_x);
  const double ystep = yt.size() > 1 ? yt[1] - yt[0] : 1, xstep = xt.size() > 1 ? xt[1] - xt[0] : 1;

  // Plot rectangle: room on the left for tick labels and the y label, below for tick labels and the x label.
  font(cr, kTick);
  double ytick_w = 0;
  for (double t : yt) ytick_w = std::max(ytick_w, text_width(cr, tick_label(t, ystep, ax.log_y)));
  const double pl = left + 10 + (ax.ylabel.empty() ? 0 : kLabel + 8) + ytick_w + 8;
  const double pt = top + (ax.title.empty() ? 10 : kPanelTitle + 16);
  const double pr = left + width - 22;
  const double pb = top + height - (kTick + 14) - (ax.xlabel.empty() ? 0 : kLabel + 10);
  if (pr - pl < 20 || pb - pt < 20) return;  // no room: a figure far too small for its panels
  auto X = [&](double v) { return pl + (v - rg.x0) / (rg.x1 - rg.x0) * (pr - pl); };
  const double ly0 = ax.log_y ? std::log10(rg.y0) : rg.y0, ly1 = ax.log_y ? std::log10(rg.y1) : rg.y1;
  auto Y = [&](double v) { return pb - ((ax.log_y ? std::log10(v) : v) - ly0) / (ly1 - ly0) * (pb - pt); };
  auto crisp = [](double v) { return std::round(v) + 0.5; };  // 1-px lines on pixel centres

  // Grid, ticks and their labels.
  line_style(cr, 1, Dash::solid);
  cairo_set_line_cap(cr, CAIRO_LINE_CAP_BUTT);
  for (double t : yt) {
    if (t < rg.y0 - 1e-9 * std::fabs(rg.y1 - rg.y0) || t > rg.y1 + 1e-9 * std::fabs(rg.y1 - rg.y0)) continue;
    const double y = crisp(Y(t));
    set_rgb(cr, kGrid);
    cairo_move_to(cr, pl, y), cairo_line_to(cr, pr, y), cairo_stroke(cr);
    set_rgb(cr, kAxis);
    cairo_move_to(cr, pl - 4, y), cairo_line_to(cr, pl, y), cairo_stroke(cr);
    text(cr, pl - 7, y, tick_label(t, ystep, ax.log_y), 2, kText);
  }
  for (double t : xt) {
    if (t < rg.x0 - 1e-9 * (rg.x1 - rg.x0) || t > rg.x1 + 1e-9 * (rg.x1 - rg.x0)) continue;
    const double x = crisp(X(t));
    set_rgb(cr, kGrid);
    cairo_move_to(cr, x, pt), cairo_line_to(cr, x, pb), cairo_stroke(cr);
    set_rgb(cr, kAxis);
    cairo_move_to(cr, x, pb), cairo_line_to(cr, x, pb + 4), cairo_stroke(cr);
    text(cr, x, pb + 6 + kTick / 2, tick_label(t, xstep, false), 1, kText);
  }
  set_rgb(cr, kAxis);
  cairo_rectangle(cr, crisp(pl), crisp(pt), std::round(pr - pl), std::round(pb - pt));
  cairo_stroke(cr);
  font(cr, kLabel);
  if (!ax.xlabel.empty()) text(cr, (pl + pr) / 2, pb + 14 + kTick + kLabel / 2, ax.xlabel, 1, kText);
  if (!ax.ylabel.empty()) text(cr, left + 8 + kLabel / 2, (pt + pb) / 2, ax.ylabel, 1, kText, true);
  font(cr, kPanelTitle, true);
  if (!ax.title.empty()) text(cr, (pl + pr) / 2, top + 8 + kPanelTitle / 2, ax.title, 1, kText);

  // Data, clipped a few pixels outside the plot rectangle so that markers on its edges stay round.
  cairo_save(cr);
  cairo_rectangle(cr, pl - 5, pt - 5, pr - pl + 10, pb - pt + 10);
  cairo_clip(cr);
  for (const auto& s : ax.series) {
    line_style(cr, s.width, s.dash);
    set_rgb(cr, s.rgb);
    bool open = false;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      const bool ok = std::isfinite(s.x[i]) && std::isfinite(s.y[i]) && (!ax.log_y || s.y[i] > 0);
      if (!ok) {
        open = false;
        continue;
      }
      if (open)
        cairo_line_to(cr, X(s.x[i]), Y(s.y[i]));
      else
        cairo_move_to(cr, X(s.x[i]), Y(s.y[i]));
      open = true;
    }
    cairo_stroke(cr);
    if (s.markers) {
      for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
        if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i]) || (ax.log_y && s.y[i] <= 0)) continue;
        cairo_new_sub_path(cr);
        cairo_arc(cr, X(s.x[i]), Y(s.y[i]), s.width + 1.5, 0, 2 * M_PI);
      }
      cairo_fill(cr);
    }
  }
  cairo_restore(cr);

  // Legend in the corner or side-middle where the lines pass least (points sampled along every segment).
  if (!ax.legend) return;
  std::vector<const Series*> shown;
  font(cr, kTick);
  double longest = 0;
  for (const auto& s : ax.series)
    if (!s.label.empty()) shown.push_back(&s), longest = std::max(longest, text_width(cr, s.label));
  if (shown.empty()) return;
  const double row = kTick + 6, lw = 8 + 28 + 6 + longest + 8, lh = shown.size() * row + 8;
  std::vector<std::pair<double, double>> samples;
  for (const auto& s : ax.series)
    for (size_t i = 0; i + 1 < s.x.size() && i + 1 < s.y.size(); ++i) {
      if (!std::isfinite(s.x[i] + s.y[i] + s.x[i + 1] + s.y[i + 1])) continue;
      if (ax.log_y && (s.y[i] <= 0 || s.y[i + 1] <= 0)) continue;
      for (int k = 0; k <= 20; ++k) {
        const double u = k / 20.0;
        samples.push_back({X(s.x[i] + (s.x[i + 1] - s.x[i]) * u), Y(s.y[i] + (s.y[i + 1] - s.y[i]) * u)});
      }
    }
  double best_x = pr - lw - 8, best_y = pt + 8;
  long best = -1;
  for (double cy : {pt + 8, (pt + pb - lh) / 2, pb - lh - 8})
    for (double cx : {pr - lw - 8, pl + 8, (pl + pr - lw) / 2}) {
      long count = 0;
      for (const auto& [qx, qy] : samples)
        count += qx >= cx - 4 && qx <= cx + lw + 4 && qy >= cy - 4 && qy <= cy + lh + 4;
      if (best < 0 || count < best) best = count, best_x = cx, best_y = cy;
    }
  cairo_rectangle(cr, crisp(best_x), crisp(best_y), std::round(lw), std::round(lh));
  cairo_set_source_rgba(cr, 1, 1, 1, 0.9);
  cairo_fill_preserve(cr);
  line_style(cr, 1, Dash::solid);
  set_rgb(cr, 0xbbbbbb);
  cairo_stroke(cr);
  for (size_t i = 0; i < shown.size(); ++i) {
    const double y = best_y + 4 + i * row + row / 2;
    line_style(cr, shown[i]->width, shown[i]->dash);
    set_rgb(cr, shown[i]->rgb);
    cairo_move_to(cr, best_x + 8, y), cairo_line_to(cr, best_x + 36, y), cairo_stroke(cr);
    if (shown[i]->markers) {
      cairo_arc(cr, best_x + 22, y, shown[i]->width + 1.5, 0, 2 * M_PI);
      cairo_fill(cr);
    }
    text(cr, best_x + 42, y, shown[i]->label, 0, kText);
  }
}

void draw(cairo_t* cr, const Figure& fig) {
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
  cairo_font_options_t* fo = cairo_font_options_create();
  cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF);  // the same layout in PNG, SVG and PDF
  cairo_set_font_options(cr, fo);
  cairo_font_options_destroy(fo);

  double top = 0;
  if (!fig.title.empty()) {
    font(cr, kTitle, true);
    text(cr, fig.width / 2.0, 8 + kTitle / 2, fig.title, 1, kText);
    top = 8 + kTitle + 4;
  }
  if (!fig.subtitle.empty()) {
    font(cr, kSubtitle);
    for (const std::string& line : wrap(cr, fig.subtitle, fig.width - 40)) {
      text(cr, fig.width / 2.0, top + 4 + kSubtitle / 2, line, 1, 0x555555);
      top += kSubtitle + 4;
    }
    top += 2;
  }
  if (fig.panels.empty()) return;

  double sx[2] = {INFINITY, -INFINITY}, sy[2] = {INFINITY, -INFINITY};
  for (const Axes& ax : fig.panels) extent(ax, &sx[0], &sx[1], &sy[0], &sy[1]);
  const bool have_shared = std::isfinite(sx[0]);
  const double w = static_cast<double>(fig.width) / fig.panels.size();
  for (size_t i = 0; i < fig.panels.size(); ++i) {
    const Range rg = panel_range(fig.panels[i], fig.share_x && have_shared ? sx : nullptr,
                                 fig.share_y && have_shared ? sy : nullptr);
    draw_axes(cr, fig.panels[i], rg, i * w, top, w, fig.height - top);
  }
}

cairo_status_t append(void* closure, const unsigned char* data, unsigned int length) {
  static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), length);
  return CAIRO_STATUS_SUCCESS;
}

void check_size(const Figure& fig) {
  ENGINE_CHECK(fig.width >= 100 && fig.height >= 100 && fig.width <= 8192 && fig.height <= 8192, "figure size ",
               fig.width, "x", fig.height, " outside [100, 8192]");
  ENGINE_CHECK(fig.scale >= 0.25 && fig.scale * fig.width <= 8192 && fig.scale * fig.height <= 8192, "figure scale ",
               fig.scale, " outside [0.25, 8192 / the larger side]");
}

int scaled(int v, double scale) { return static_cast<int>(std::lround(v * scale)); }

using SurfacePtr = std::unique_ptr<cairo_surface_t, decltype(&cairo_surface_destroy)>;

// Draws `fig` on `surface` and finishes it (a stream surface writes its file then).
void paint(cairo_surface_t* surface, const Figure& fig) {
  cairo_t* cr = cairo_create(surface);
  draw(cr, fig);
  const cairo_status_t st = cairo_status(cr);
  cairo_destroy(cr);
  cairo_surface_finish(surface);
  ENGINE_CHECK(st == CAIRO_STATUS_SUCCESS && cairo_surface_status(surface) == CAIRO_STATUS_SUCCESS,
               "cairo could not draw the figure: ",
               cairo_status_to_string(st != CAIRO_STATUS_SUCCESS ? st : cairo_surface_status(surface)));
}

SurfacePtr raster(const Figure& fig) {
  check_size(fig);
  SurfacePtr s(
      cairo_image_surface_create(CAIRO_FORMAT_RGB24, scaled(fig.width, fig.scale), scaled(fig.height, fig.scale)),
      cairo_surface_destroy);
  cairo_t* cr = cairo_create(s.get());
  cairo_scale(cr, fig.scale, fig.scale);
  draw(cr, fig);
  const cairo_status_t st = cairo_status(cr);
  cairo_destroy(cr);
  ENGINE_CHECK(st == CAIRO_STATUS_SUCCESS, "cairo could not draw the figure: ", cairo_status_to_string(st));
  cairo_surface_flush(s.get());
  return s;
}

}  // namespace

std::string render_figure(const Figure& fig, const std::string& format) {
  check_size(fig);
  std::string out;
  if (format == "png") {
    SurfacePtr s = raster(fig);
    const cairo_status_t st = cairo_surface_write_to_png_stream(s.get(), append, &out);
    ENGINE_CHECK(st == CAIRO_STATUS_SUCCESS, "cairo could not encode the PNG: ", cairo_status_to_string(st));
  } else if (format == "svg") {
    SurfacePtr s(cairo_svg_surface_create_for_stream(append, &out, fig.width, fig.height), cairo_surface_destroy);
    paint(s.get(), fig);
  } else if (format == "pdf") {
    SurfacePtr s(cairo_pdf_surface_create_for_stream(append, &out, fig.width, fig.height), cairo_surface_destroy);
    paint(s.get(), fig);
  } else {
    engine::fail(cat("figure format '", format, "' is not png, svg or pdf"));
  }
  return out;
}

void save_figure(const Figure& fig, const std::string& path) {
  const size_t dot = path.rfind('.');
  std::string ext = dot == std::string::npos ? "" : path.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  ENGINE_CHECK(ext == "png" || ext == "svg" || ext == "pdf", path, ": a figure is written as .png, .svg or .pdf");
  write_file_atomic(path, render_figure(fig, ext));
}

std::vector<uint8_t> render_rgb(const Figure& fig) {
  SurfacePtr s = raster(fig);
  const unsigned char* data = cairo_image_surface_get_data(s.get());
  const int stride = cairo_image_surface_get_stride(s.get());
  const int w = cairo_image_surface_get_width(s.get()), h = cairo_image_surface_get_height(s.get());
  std::vector<uint8_t> rgb(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint32_t px;  // native-endian 0x00RRGGBB
      std::memcpy(&px, data + static_cast<size_t>(y) * stride + 4 * x, 4);
      uint8_t* o = &rgb[(static_cast<size_t>(y) * w + x) * 3];
      o[0] = static_cast<uint8_t>(px >> 16), o[1] = static_cast<uint8_t>(px >> 8), o[2] = static_cast<uint8_t>(px);
    }
  return rgb;
}

}  // namespace app
