#include <cairo.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "apps/common/config.h"
#include "apps/common/metrics.h"
#include "apps/common/plot.h"
#include "apps/common/step_log.h"
#include "engine/json_strict.h"
#include "tests/app/app_test_util.h"

namespace {

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// Pixels that are not white in rows [y0, y1) and columns [x0, x1) of an RGB image of width w.
size_t inked(const std::vector<uint8_t>& rgb, int w, int x0, int x1, int y0, int y1) {
  size_t n = 0;
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x) {
      const uint8_t* p = &rgb[(static_cast<size_t>(y) * w + x) * 3];
      n += p[0] < 200 || p[1] < 200 || p[2] < 200;
    }
  return n;
}

std::vector<app::EpochRecord> epochs(int n) {
  std::vector<app::EpochRecord> h;
  for (int e = 1; e <= n; ++e) {
    app::EpochRecord r;
    r.epoch = e;
    r.train_loss = 1.0 / e;
    r.train_acc = 0.7 + 0.04 * e;
    r.test_loss = 1.2 / e;
    r.test_acc = 0.68 + 0.03 * e;
    r.val_loss = r.val_acc = NAN;
    r.lr = 0.1;
    h.push_back(r);
  }
  return h;
}

// steps.csv of a run with 3 epochs of 10 steps, a record every 2 steps.
std::vector<app::StepRecord> steps_of_run() {
  std::vector<app::StepRecord> s;
  for (int it = 2; it <= 30; it += 2) {
    app::StepRecord r;
    r.iteration = it;
    r.epoch = it / 10.0;
    r.train_loss = 2.0 / (1 + it / 5.0);
    r.train_acc = 0.5 + 0.4 * it / 30.0;
    r.lr = 0.1;
    r.steps = 2;
    r.examples = 64;
    r.elapsed_seconds = it * 0.5;
    s.push_back(r);
  }
  return s;
}

void write_steps(const std::string& path, const std::vector<app::StepRecord>& s) {
  std::string text = app::steps_csv_header() + "\n";
  for (const auto& r : s) text += app::to_csv_row(r) + "\n";
  std::ofstream(path, std::ios::binary) << text;
}

}  // namespace

TEST_CASE("plot: ticks use 1-2-5 steps", "[app][plot]") {
  REQUIRE(app::nice_ticks(0, 1, 5, false) == std::vector<double>{0, 0.2, 0.4, 0.6000000000000001, 0.8, 1});
  std::vector<double> t = app::nice_ticks(1, 10, 8, true);
  REQUIRE(t.front() == 2);
  REQUIRE(t[1] - t[0] == 2);
  REQUIRE(app::nice_ticks(3, 3.5, 5, true).size() <= 1);
  REQUIRE(app::log_ticks(5, 60) == std::vector<double>{5, 10, 20, 50});
  REQUIRE(app::log_ticks(0.01, 1000) == std::vector<double>{0.01, 0.1, 1, 10, 100, 1000});  // wide: decades only
  REQUIRE_THROWS_WITH(app::log_ticks(0, 1), Catch::Contains("positive"));
}

TEST_CASE("plot: a run's curves are a PNG with its colours and an SVG", "[app][plot]") {
  apptest::TempDir dir;
  write_steps(dir / "steps.csv", steps_of_run());
  app::plot_run_curves(dir.str(), "resnet20\nlr 0.1, batch-size 128", epochs(3));
  cairo_surface_t* png = cairo_image_surface_create_from_png((dir / "curves.png").c_str());
  REQUIRE(cairo_surface_status(png) == CAIRO_STATUS_SUCCESS);
  REQUIRE(cairo_image_surface_get_width(png) == 640);
  REQUIRE(cairo_image_surface_get_height(png) == 460);
  // The distinct colours of the drawing (anti-aliasing adds blends; the series' own colours must be among them).
  std::set<uint32_t> colors;
  const unsigned char* data = cairo_image_surface_get_data(png);
  const int stride = cairo_image_surface_get_stride(png);
  size_t blue = 0, purple = 0, green = 0;
  for (int y = 0; y < 460; ++y)
    for (int x = 0; x < 640; ++x) {
      uint32_t px;
      std::memcpy(&px, data + y * stride + 4 * x, 4);
      px &= 0xffffff;
      colors.insert(px);
      blue += px == 0x1f77b4, purple += px == 0xbf3fbf, green += px == 0x2ca02c;
    }
  cairo_surface_destroy(png);
  REQUIRE(colors.size() > 20);
  REQUIRE(blue > 200);    // train loss, every 2 steps
  REQUIRE(purple > 100);  // train accuracy (dashed)
  REQUIRE(green > 50);    // test accuracy per epoch (dash-dot, markers)
  const std::string svg = read_all(dir / "curves.svg");
  REQUIRE_THAT(svg, Catch::Contains("<svg"));
  REQUIRE(svg.size() > 5000);
}

TEST_CASE("plot: titles, labels and the legend are drawn as text", "[app][plot]") {
  app::Axes ax;
  ax.series.push_back({"train loss", {0, 1, 2, 3}, {2, 1, 0.6, 0.5}, 0x1f77b4, 2, app::Dash::solid});
  ax.series.push_back({"test acc", {1, 2, 3}, {0.7, 0.8, 0.85}, 0x2ca02c, 2, app::Dash::dashdot, true});
  // Blank texts keep the layout of the labelled figure, so any extra ink there is the text.
  app::Figure bare;
  bare.title = " ";
  ax.xlabel = ax.ylabel = " ";
  ax.legend = false;
  bare.panels = {ax};
  app::Figure labelled = bare;
  labelled.title = "resnet20 on Fashion-MNIST";
  labelled.panels[0].xlabel = "epoch";
  labelled.panels[0].ylabel = "loss / accuracy";
  app::Figure legend = bare;
  legend.panels[0].legend = true;
  const std::vector<uint8_t> a = app::render_rgb(bare), b = app::render_rgb(labelled), c = app::render_rgb(legend);
  REQUIRE(a.size() == 640u * 440 * 3);
  const int w = 640, h = 440;
  REQUIRE(inked(a, w, 0, w, 0, 24) == 0);
  REQUIRE(inked(b, w, 0, w, 0, 24) > 200);  // the title
  REQUIRE(inked(a, w, 0, 24, 0, h) == 0);
  REQUIRE(inked(b, w, 0, 24, 0, h) > 100);  // the rotated y label
  REQUIRE(inked(a, w, 0, w, h - 20, h) == 0);
  REQUIRE(inked(b, w, 0, w, h - 20, h) > 100);                       // the x label
  REQUIRE(inked(c, w, 0, w, 0, h) > inked(a, w, 0, w, 0, h) + 300);  // the legend's box, lines and names
  // Tick labels are text as well: the bare figure has them, left of the plot.
  REQUIRE(inked(a, w, 24, 60, 40, h - 60) > 100);
}

TEST_CASE("plot: PNG, SVG and PDF from one drawing", "[app][plot]") {
  apptest::TempDir dir;
  app::Figure fig;
  app::Axes ax;
  ax.title = "error";
  ax.log_y = true;
  ax.series.push_back({"a", {1, 2, 3, 4}, {50, 20, 9, 6}, 0xd62728, 2.6, app::Dash::solid});
  fig.panels = {ax, ax};
  for (const char* ext : {"png", "svg", "pdf"}) {
    const std::string path = dir / (std::string("f.") + ext);
    app::save_figure(fig, path);
    const std::string bytes = read_all(path);
    INFO(ext);
    REQUIRE(bytes.size() > 2000);
  }
  REQUIRE(read_all(dir / "f.png") == app::render_figure(fig, "png"));  // (SVG ids and PDF dates vary)
  REQUIRE(read_all(dir / "f.png").substr(1, 3) == "PNG");
  REQUIRE_THAT(read_all(dir / "f.svg"), Catch::Contains("<svg") && Catch::Contains("stroke"));
  REQUIRE(read_all(dir / "f.pdf").substr(0, 5) == "%PDF-");
  REQUIRE_THROWS_WITH(app::save_figure(fig, dir / "f.jpg"), Catch::Contains(".png, .svg or .pdf"));
  const app::Figure fig_at_1 = fig;
  fig.scale = 2;  // twice the pixels, the same drawing
  const std::vector<uint8_t> sharp = app::render_rgb(fig);
  REQUIRE(sharp.size() == 4 * static_cast<size_t>(fig.width) * fig.height * 3);
  REQUIRE(inked(sharp, 2 * fig.width, 0, 2 * fig.width, 0, 2 * fig.height) >
          3 * inked(app::render_rgb(fig_at_1), fig.width, 0, fig.width, 0, fig.height));
  fig.width = 50;
  REQUIRE_THROWS_WITH(app::render_figure(fig, "png"), Catch::Contains("outside [100, 8192]"));
}

TEST_CASE("plot: runs_figure puts epochs on the iteration axis and shares axes between panels", "[app][plot]") {
  apptest::TempDir dir;
  std::filesystem::create_directories(dir / "a");
  std::filesystem::create_directories(dir / "old");
  write_steps(dir / "a/steps.csv", steps_of_run());
  app::write_metrics_files(dir / "a", epochs(3));
  app::write_metrics_files(dir / "old", epochs(3));  // a run from before steps.csv
  const app::RunData a = app::load_run(dir / "a", "resnet20"), old = app::load_run(dir / "old", "plain20");
  REQUIRE(a.steps_per_epoch == 10);
  REQUIRE(old.steps.empty());

  app::Figure f = app::runs_figure({{a}, {a}}, {"plain", "ResNet"}, {});
  REQUIRE(f.panels.size() == 2);
  REQUIRE(f.share_x);
  REQUIRE(f.share_y);
  REQUIRE(f.panels[1].title == "ResNet");
  const app::Series& train = f.panels[0].series[0];
  const app::Series& test = f.panels[0].series[1];
  REQUIRE(train.x.size() == 15);
  REQUIRE(train.x.front() == 2);
  REQUIRE(train.dash == app::Dash::dashed);
  REQUIRE(train.width < test.width);  // thin training error, bold test error
  REQUIRE(test.x == std::vector<double>{10, 20, 30});
  REQUIRE(std::fabs(test.y[0] - 29) < 1e-9);  // error in %: 100 * (1 - 0.71)
  REQUIRE(app::render_rgb(f).size() == static_cast<size_t>(f.width) * f.height * 3);
  app::RunPlotOptions capped;
  capped.y_max = 20;  // the paper's Fig. 6 shows errors up to 20%
  REQUIRE(app::runs_figure({{a}}, {}, capped).panels[0].y_max == 20);
  REQUIRE(app::runs_figure({{a}}, {}, capped).panels[0].y_min == 0);

  // --smooth 6: every point the mean of the records (2 iterations each) of the last 6 iterations. The accuracy is
  // linear in the iteration, so the mean of the last three records is the middle one's value; fewer at the start.
  app::RunPlotOptions smooth;
  smooth.smooth = 6;
  const app::Series smoothed = app::runs_figure({{a}}, {}, smooth).panels[0].series[0];
  auto error_at = [](double it) { return 100 * (1 - (0.5 + 0.4 * it / 30.0)); };
  REQUIRE(smoothed.x == train.x);
  REQUIRE(std::fabs(smoothed.y[0] - error_at(2)) < 1e-9);
  REQUIRE(std::fabs(smoothed.y[1] - error_at(3)) < 1e-9);
  for (size_t j = 2; j < smoothed.y.size(); ++j) REQUIRE(std::fabs(smoothed.y[j] - error_at(smoothed.x[j] - 2)) < 1e-9);
  REQUIRE(std::fabs(train.y[5] - error_at(train.x[5])) < 1e-9);  // unsmoothed: as logged

  REQUIRE_THROWS_WITH(app::runs_figure({{old}}, {}, {}), Catch::Contains("old") && Catch::Contains("--x epochs"));
  app::RunPlotOptions by_epoch;
  by_epoch.x = "epochs";
  by_epoch.metrics = {"train_loss", "test_acc"};
  f = app::runs_figure({{old, a}}, {}, by_epoch);
  REQUIRE(f.panels[0].series[0].x == std::vector<double>{1, 2, 3});
  REQUIRE(f.panels[0].series[2].x.size() == 15);  // run a's training loss: every 2 steps, in epochs
  REQUIRE(f.panels[0].series[2].x.front() == 0.2);
  by_epoch.metrics = {"train_err"};
  REQUIRE_THROWS_WITH(app::runs_figure({{a}}, {}, by_epoch), Catch::Contains("train_error"));
}

TEST_CASE("plot: the run title names the model and the recipe", "[app][plot]") {
  app::TrainConfig c;
  c.model = "resnet20";
  c.lr = 0.1;
  c.augment = true;
  c.threads = 2;
  const std::string t = app::run_title(c);
  REQUIRE_THAT(t, Catch::StartsWith("resnet20\n") && Catch::Contains("lr 0.1") && Catch::Contains("augment") &&
                      Catch::Contains("batch-size 128"));
  REQUIRE_THAT(t, !Catch::Contains("threads") && !Catch::Contains("normalize"));
}

TEST_CASE("metrics: csv and jsonl files read back", "[app][plot]") {
  apptest::TempDir dir;
  app::EpochRecord r;
  r.epoch = 3;
  r.train_loss = 0.215;
  r.train_acc = 0.921;
  r.val_loss = r.val_acc = NAN;
  r.test_loss = 0.3;
  r.test_acc = 0.905;
  r.lr = 0.05;
  r.examples_per_sec = 4812.3;
  app::write_metrics_files(dir.str(), {r});
  auto back = app::read_metrics_csv(dir / "metrics.csv");
  REQUIRE(back.size() == 1);
  REQUIRE(back[0].epoch == 3);
  REQUIRE(back[0].train_acc == 0.921);
  REQUIRE(std::isnan(back[0].val_acc));
  REQUIRE(back[0].examples_per_sec == 4812.3);
  std::ifstream j(dir / "metrics.jsonl");
  std::string line;
  std::getline(j, line);
  app::EpochRecord from_json = app::record_from_json(engine::parse_json(line));
  REQUIRE(from_json.test_acc == 0.905);
  REQUIRE(std::isnan(from_json.val_loss));
  REQUIRE_THROWS_WITH(app::read_metrics_csv(dir / "nope.csv"), Catch::Contains("cannot open"));
}

TEST_CASE("steps.csv: records read back exactly, a cut last line is dropped, a bad one named", "[app][plot]") {
  apptest::TempDir dir;
  std::vector<app::StepRecord> s = steps_of_run();
  s[0].train_loss = 0.1 + 0.2;  // not representable in 6 digits
  write_steps(dir / "steps.csv", s);
  std::vector<app::StepRecord> back = app::read_steps_csv(dir / "steps.csv");
  REQUIRE(back.size() == s.size());
  REQUIRE(back[0].train_loss == s[0].train_loss);
  REQUIRE(back[4].epoch == s[4].epoch);
  REQUIRE(back.back().iteration == 30);
  std::ofstream(dir / "steps.csv", std::ios::app) << "32,3.2,0.5";  // a kill while appending
  REQUIRE(app::read_steps_csv(dir / "steps.csv").size() == s.size());
  std::ofstream(dir / "steps.csv", std::ios::app) << "\n";
  REQUIRE_THROWS_WITH(app::read_steps_csv(dir / "steps.csv"),
                      Catch::Contains("steps.csv:17") && Catch::Contains("expected 8 columns"));
  REQUIRE(app::log_interval(0, 469) == 18);  // about 25 records per epoch
  REQUIRE(app::log_interval(0, 16) == 1);
  REQUIRE(app::log_interval(7, 469) == 7);
}
