#include "apps/common/plot.h"

#include <algorithm>
#include <cstdio>
#include <memory>

#include "apps/common/font5x7.h"
#include "apps/common/png.h"
#include "engine/error.h"

namespace app {

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

namespace {

// ---------------- drawing backends ----------------
struct Pt {
  double x, y;
};

class Painter {
 public:
  virtual ~Painter() = default;
  virtual void fill_rect(double x, double y, double w, double h, uint32_t rgb) = 0;
  virtual void polyline(const std::vector<Pt>& pts, uint32_t rgb, double width, Dash dash) = 0;
  virtual void dot(double x, double y, double r, uint32_t rgb) = 0;
  // Text at scale s (glyph cell 6s x 8s); anchor 0 left, 1 centre, 2 right; y is the top of the text, or its
  // centre line when vertical (drawn reading upwards, x the left edge).
  virtual void text(double x, double y, const std::string& s, int scale, int anchor, bool vertical, uint32_t rgb) = 0;
};

double text_width(const std::string& s, int scale) { return s.size() * font5x7::kCellW * scale - scale; }

std::vector<double> dash_pattern(Dash d, double w) {
  switch (d) {
    case Dash::dashed:
      return {4 * w, 2.5 * w};
    case Dash::dashdot:
      return {4 * w, 1.5 * w, 1 * w, 1.5 * w};
    case Dash::dotted:
      return {1 * w, 1.5 * w};
    default:
      return {};
  }
}

class Raster : public Painter {
 public:
  Raster(int w, int h) : w_(w), h_(h), rgb_(static_cast<size_t>(w) * h * 3, 255), cover_(static_cast<size_t>(w) * h) {}
  const std::vector<uint8_t>& pixels() const { return rgb_; }

  void fill_rect(double x, double y, double w, double h, uint32_t rgb) override {
    int x0 = std::max(0, (int)std::lround(x)), y0 = std::max(0, (int)std::lround(y));
    int x1 = std::min(w_, (int)std::lround(x + w)), y1 = std::min(h_, (int)std::lround(y + h));
    for (int yy = y0; yy < y1; ++yy)
      for (int xx = x0; xx < x1; ++xx) blend(xx, yy, rgb, 1.0);
  }

  void polyline(const std::vector<Pt>& pts, uint32_t rgb, double width, Dash dash) override {
    if (pts.empty()) return;
    // Coverage is combined with max() over the whole line, then blended once, so joints are not darker.
    std::fill(cover_.begin(), cover_.end(), 0.f);
    int bx0 = w_, by0 = h_, bx1 = -1, by1 = -1;
    auto seg = [&](Pt a, Pt b) {
      const double r = width / 2;
      int x0 = std::max(0, (int)std::floor(std::min(a.x, b.x) - r - 1));
      int x1 = std::min(w_ - 1, (int)std::ceil(std::max(a.x, b.x) + r + 1));
      int y0 = std::max(0, (int)std::floor(std::min(a.y, b.y) - r - 1));
      int y1 = std::min(h_ - 1, (int)std::ceil(std::max(a.y, b.y) + r + 1));
      bx0 = std::min(bx0, x0), by0 = std::min(by0, y0), bx1 = std::max(bx1, x1), by1 = std::max(by1, y1);
      const double dx = b.x - a.x, dy = b.y - a.y, len2 = dx * dx + dy * dy;
      for (int y = y0; y <= y1; ++y)
        for (int x = x0; x <= x1; ++x) {
          const double px = x + 0.5 - a.x, py = y + 0.5 - a.y;
          double t = len2 > 0 ? std::clamp((px * dx + py * dy) / len2, 0.0, 1.0) : 0.0;
          const double ex = px - t * dx, ey = py - t * dy;
          const double c = std::clamp(r + 0.5 - std::sqrt(ex * ex + ey * ey), 0.0, 1.0);
          float& cv = cover_[static_cast<size_t>(y) * w_ + x];
          cv = std::max(cv, static_cast<float>(c));
        }
    };
    std::vector<double> pattern = dash_pattern(dash, width);
    if (pts.size() == 1) seg(pts[0], pts[0]);
    size_t k = 0;
    double left = pattern.empty() ? 0 : pattern[0];
    bool on = true;
    for (size_t i = 1; i < pts.size(); ++i) {
      Pt a = pts[i - 1], b = pts[i];
      if (pattern.empty()) {
        seg(a, b);
        continue;
      }
      double len = std::hypot(b.x - a.x, b.y - a.y), pos = 0;
      while (pos < len) {
        double step = std::min(left, len - pos);
        Pt p{a.x + (b.x - a.x) * pos / len, a.y + (b.y - a.y) * pos / len};
        Pt q{a.x + (b.x - a.x) * (pos + step) / len, a.y + (b.y - a.y) * (pos + step) / len};
        if (on) seg(p, q);
        pos += step;
        left -= step;
        if (left <= 1e-9) {
          k = (k + 1) % pattern.size();
          left = pattern[k];
          on = !on;
        }
      }
    }
    for (int y = by0; y <= by1; ++y)
      for (int x = bx0; x <= bx1; ++x) {
        float c = cover_[static_cast<size_t>(y) * w_ + x];
        if (c > 0) blend(x, y, rgb, c);
      }
  }

  void dot(double x, double y, double r, uint32_t rgb) override {
    for (int yy = (int)std::floor(y - r - 1); yy <= (int)std::ceil(y + r + 1); ++yy)
      for (int xx = (int)std::floor(x - r - 1); xx <= (int)std::ceil(x + r + 1); ++xx) {
        if (xx < 0 || yy < 0 || xx >= w_ || yy >= h_) continue;
        double d = std::hypot(xx + 0.5 - x, yy + 0.5 - y);
        double c = std::clamp(r + 0.5 - d, 0.0, 1.0);
        if (c > 0) blend(xx, yy, rgb, c);
      }
  }

  void text(double x, double y, const std::string& s, int scale, int anchor, bool vertical, uint32_t rgb) override {
    const double tw = text_width(s, scale);
    const double shift = anchor == 0 ? 0 : anchor == 1 ? tw / 2 : tw;
    const int cw = font5x7::kCellW * scale;
    for (size_t i = 0; i < s.size(); ++i) {
      const uint8_t* g = font5x7::glyph(s[i]);
      for (int row = 0; row < font5x7::kHeight; ++row)
        for (int col = 0; col < font5x7::kWidth; ++col) {
          if (!(g[row] & (0x10 >> col))) continue;
          double u = i * cw + col * scale - shift;  // along the text
          double v = row * scale;                   // across, from the top of the glyph
          if (!vertical) {
            fill_rect(std::round(x) + u, std::round(y) + v, scale, scale, rgb);
          } else {  // rotated 90 degrees counter-clockwise: text runs bottom to top
            fill_rect(std::round(x) + v, std::round(y) - u - scale, scale, scale, rgb);
          }
        }
    }
  }

 private:
  void blend(int x, int y, uint32_t rgb, double a) {
    if (x < 0 || y < 0 || x >= w_ || y >= h_) return;
    uint8_t* p = &rgb_[(static_cast<size_t>(y) * w_ + x) * 3];
    const uint8_t c[3] = {uint8_t(rgb >> 16), uint8_t(rgb >> 8), uint8_t(rgb)};
    for (int k = 0; k < 3; ++k) p[k] = static_cast<uint8_t>(std::lround(p[k] * (1 - a) + c[k] * a));
  }
  int w_, h_;
  std::vector<uint8_t> rgb_;
  std::vector<float> cover_;
};

std::string hexcolor(uint32_t rgb) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%06x", rgb & 0xffffff);
  return buf;
}
std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '&')
      out += "&amp;";
    else if (c == '"')
      out += "&quot;";
    else
      out += c;
  }
  return out;
}
std::string f2(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

class Svg : public Painter {
 public:
  Svg(int w, int h) {
    out_ = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(w) + "\" height=\"" +
           std::to_string(h) + "\" viewBox=\"0 0 " + std::to_string(w) + " " + std::to_string(h) + "\">\n";
  }
  std::string finish() { return out_ + "</svg>\n"; }

  void fill_rect(double x, double y, double w, double h, uint32_t rgb) override {
    out_ += "<rect x=\"" + f2(x) + "\" y=\"" + f2(y) + "\" width=\"" + f2(w) + "\" height=\"" + f2(h) + "\" fill=\"" +
            hexcolor(rgb) + "\"/>\n";
  }
  void polyline(const std::vector<Pt>& pts, uint32_t rgb, double width, Dash dash) override {
    if (pts.empty()) return;
    out_ += "<polyline fill=\"none\" stroke=\"" + hexcolor(rgb) + "\" stroke-width=\"" + f2(width) +
            "\" stroke-linejoin=\"round\" stroke-linecap=\"round\"";
    std::vector<double> pattern = dash_pattern(dash, width);
    if (!pattern.empty()) {
      out_ += " stroke-dasharray=\"";
      for (size_t i = 0; i < pattern.size(); ++i) out_ += (i ? "," : "") + f2(pattern[i]);
      out_ += "\"";
    }
    out_ += " points=\"";
    for (size_t i = 0; i < pts.size(); ++i) out_ += (i ? " " : "") + f2(pts[i].x) + "," + f2(pts[i].y);
    out_ += "\"/>\n";
  }
  void dot(double x, double y, double r, uint32_t rgb) override {
    out_ += "<circle cx=\"" + f2(x) + "\" cy=\"" + f2(y) + "\" r=\"" + f2(r) + "\" fill=\"" + hexcolor(rgb) + "\"/>\n";
  }
  void text(double x, double y, const std::string& s, int scale, int anchor, bool vertical, uint32_t rgb) override {
    const char* a = anchor == 0 ? "start" : anchor == 1 ? "middle" : "end";
    const double size = font5x7::kCellH * scale * 1.15;
    // Baseline about 7/8 of a cell below the top, as the bitmap font.
    std::string pos = vertical ? "transform=\"translate(" + f2(x + 7 * scale) + "," + f2(y) + ") rotate(-90)\""
                               : "x=\"" + f2(x) + "\" y=\"" + f2(y + 7 * scale) + "\"";
    out_ += "<text " + pos + " font-family=\"DejaVu Sans Mono, monospace\" font-size=\"" + f2(size) +
            "\" text-anchor=\"" + a + "\" fill=\"" + hexcolor(rgb) + "\">" + xml_escape(s) + "</text>\n";
  }

 private:
  std::string out_;
};

// ---------------- layout ----------------
std::string tick_label(double v, double step) {
  int decimals = 0;
  while (decimals < 6 && std::fabs(step * std::pow(10, decimals) - std::round(step * std::pow(10, decimals))) > 1e-6)
    ++decimals;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

void draw_axes(Painter& p, const Axes& ax, double left, double top, double width, double height) {
  const uint32_t kAxis = 0x333333, kGrid = 0xe6e6e6, kText = 0x222222;
  const int s = 1;  // font scale for ticks
  // Data ranges.
  double x0 = ax.x_min, x1 = ax.x_max, y0 = ax.y_min, y1 = ax.y_max;
  double dx0 = INFINITY, dx1 = -INFINITY, dy0 = INFINITY, dy1 = -INFINITY;
  for (const auto& sr : ax.series)
    for (size_t i = 0; i < sr.x.size() && i < sr.y.size(); ++i) {
      if (!std::isfinite(sr.x[i]) || !std::isfinite(sr.y[i])) continue;
      dx0 = std::min(dx0, sr.x[i]), dx1 = std::max(dx1, sr.x[i]);
      dy0 = std::min(dy0, sr.y[i]), dy1 = std::max(dy1, sr.y[i]);
    }
  if (!std::isfinite(dx0)) dx0 = 0, dx1 = 1, dy0 = 0, dy1 = 1;
  if (std::isnan(x0)) x0 = dx0;
  if (std::isnan(x1)) x1 = dx1;
  if (!(x1 > x0)) x0 -= 0.5, x1 += 0.5;
  bool auto_y = std::isnan(y0) || std::isnan(y1);
  if (std::isnan(y0)) y0 = dy0;
  if (std::isnan(y1)) y1 = dy1;
  if (!(y1 > y0)) y0 -= 0.05 * (std::fabs(y0) + 1), y1 += 0.05 * (std::fabs(y1) + 1);
  std::vector<double> yt = nice_ticks(y0, y1, 6, false);
  if (auto_y && yt.size() >= 2) {  // extend to whole ticks
    double step = yt[1] - yt[0];
    y0 = std::min(y0, std::floor(y0 / step + 1e-9) * step);
    y1 = std::max(y1, std::ceil(y1 / step - 1e-9) * step);
    yt = nice_ticks(y0, y1, 6, false);
  }
  std::vector<double> xt = nice_ticks(x0, x1, 8, ax.integer_x);

  // Plot rectangle inside the panel: room for tick labels, axis labels and the title.
  size_t ylabel_w = 0;
  for (double t : yt) ylabel_w = std::max(ylabel_w, tick_label(t, yt.size() > 1 ? yt[1] - yt[0] : 1).size());
  const double pl = left + 14 + (ax.ylabel.empty() ? 0 : 16) + ylabel_w * 6 * s;
  const double pt = top + (ax.title.empty() ? 10 : 30);
  const double pr = left + width - 14;
  const double pb = top + height - (ax.xlabel.empty() ? 24 : 42);
  auto X = [&](double v) { return pl + (v - x0) / (x1 - x0) * (pr - pl); };
  auto Y = [&](double v) { return pb - (v - y0) / (y1 - y0) * (pb - pt); };

  // Grid and ticks.
  for (double t : yt) {
    if (t < y0 - 1e-9 || t > y1 + 1e-9) continue;
    double y = std::round(Y(t)) + 0.5;
    p.polyline({{pl, y}, {pr, y}}, kGrid, 1, Dash::solid);
    p.polyline({{pl - 4, y}, {pl, y}}, kAxis, 1, Dash::solid);
    p.text(pl - 7, y - 4 * s, tick_label(t, yt.size() > 1 ? yt[1] - yt[0] : 1), s, 2, false, kText);
  }
  for (double t : xt) {
    if (t < x0 - 1e-9 || t > x1 + 1e-9) continue;
    double x = std::round(X(t)) + 0.5;
    p.polyline({{x, pt}, {x, pb}}, kGrid, 1, Dash::solid);
    p.polyline({{x, pb}, {x, pb + 4}}, kAxis, 1, Dash::solid);
    p.text(x, pb + 8, tick_label(t, xt.size() > 1 ? xt[1] - xt[0] : 1), s, 1, false, kText);
  }
  // Frame.
  p.polyline({{pl, pt}, {pr, pt}, {pr, pb}, {pl, pb}, {pl, pt}}, kAxis, 1, Dash::solid);
  if (!ax.title.empty()) p.text((pl + pr) / 2, top + 8, ax.title, 2, 1, false, kText);
  if (!ax.xlabel.empty()) p.text((pl + pr) / 2, pb + 24, ax.xlabel, 2, 1, false, kText);
  if (!ax.ylabel.empty()) p.text(left + 4, (pt + pb) / 2, ax.ylabel, 2, 1, true, kText);

  // Data, clipped to the plot by dropping points outside the ranges.
  for (const auto& sr : ax.series) {
    std::vector<Pt> run;
    auto flush = [&] {
      if (!run.empty()) p.polyline(run, sr.rgb, sr.width, sr.dash);
      run.clear();
    };
    for (size_t i = 0; i < sr.x.size() && i < sr.y.size(); ++i) {
      double x = sr.x[i], y = sr.y[i];
      if (!std::isfinite(x) || !std::isfinite(y) || y < y0 - 1e-9 || y > y1 + 1e-9) {
        flush();
        continue;
      }
      run.push_back({X(x), Y(y)});
      if (sr.markers) p.dot(X(x), Y(y), sr.width + 1.5, sr.rgb);
    }
    flush();
  }

  // Legend where the lines pass least: the four corners and the middle of each side, scored by points sampled
  // along every segment.
  if (!ax.legend) return;
  std::vector<const Series*> shown;
  size_t longest = 0;
  for (const auto& sr : ax.series)
    if (!sr.label.empty()) shown.push_back(&sr), longest = std::max(longest, sr.label.size());
  if (shown.empty()) return;
  const double lw = 38 + longest * 6 * s + 8, lh = shown.size() * 14 + 8;
  std::vector<Pt> samples;
  for (const auto& sr : ax.series)
    for (size_t i = 0; i < sr.x.size() && i < sr.y.size(); ++i) {
      if (!std::isfinite(sr.x[i]) || !std::isfinite(sr.y[i])) continue;
      samples.push_back({X(sr.x[i]), Y(sr.y[i])});
      if (i + 1 < sr.x.size() && i + 1 < sr.y.size() && std::isfinite(sr.x[i + 1]) && std::isfinite(sr.y[i + 1]))
        for (int k = 1; k < 40; ++k)
          samples.push_back(
              {X(sr.x[i] + (sr.x[i + 1] - sr.x[i]) * k / 40.0), Y(sr.y[i] + (sr.y[i + 1] - sr.y[i]) * k / 40.0)});
    }
  double best_x = pr - lw - 6, best_y = pt + 6;
  int best_count = -1;
  const double xs[2] = {pr - lw - 6, pl + 6}, ys[3] = {pt + 6, (pt + pb - lh) / 2, pb - lh - 6};
  for (double cy : ys)
    for (double cx : xs) {
      int count = 0;
      for (const Pt& q : samples) count += q.x >= cx - 4 && q.x <= cx + lw + 4 && q.y >= cy - 4 && q.y <= cy + lh + 4;
      if (best_count < 0 || count < best_count) best_count = count, best_x = cx, best_y = cy;
    }
  p.fill_rect(best_x, best_y, lw, lh, 0xcccccc);
  p.fill_rect(best_x + 1, best_y + 1, lw - 2, lh - 2, 0xffffff);
  for (size_t i = 0; i < shown.size(); ++i) {
    double y = best_y + 4 + i * 14 + 7;
    p.polyline({{best_x + 6, y}, {best_x + 32, y}}, shown[i]->rgb, shown[i]->width, shown[i]->dash);
    p.text(best_x + 38, y - 4, shown[i]->label, s, 0, false, kText);
  }
}

void draw(Painter& p, const Figure& fig) {
  p.fill_rect(0, 0, fig.width, fig.height, 0xffffff);
  if (fig.panels.empty()) return;
  const double w = static_cast<double>(fig.width) / fig.panels.size();
  for (size_t i = 0; i < fig.panels.size(); ++i) draw_axes(p, fig.panels[i], i * w, 0, w, fig.height);
}
}  // namespace

std::vector<uint8_t> render_rgb(const Figure& fig) {
  ENGINE_CHECK(fig.width >= 100 && fig.height >= 100 && fig.width <= 8192 && fig.height <= 8192, "figure size ",
               fig.width, "x", fig.height, " outside [100, 8192]");
  Raster r(fig.width, fig.height);
  draw(r, fig);
  return r.pixels();
}

void save_png(const Figure& fig, const std::string& path) { write_png(path, fig.width, fig.height, render_rgb(fig)); }

std::string render_svg(const Figure& fig) {
  Svg s(fig.width, fig.height);
  draw(s, fig);
  return s.finish();
}

void save_svg(const Figure& fig, const std::string& path) { write_file_atomic(path, render_svg(fig)); }

}  // namespace app
