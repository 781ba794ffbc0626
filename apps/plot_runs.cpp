// plot_runs: several runs' curves on one figure, as the paper's figures: training loss, and error (%) with thin
// dashed training error and bold test error, one colour per run.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "apps/common/cli.h"
#include "apps/common/metrics.h"
#include "apps/common/plot.h"
#include "engine/error.h"
#include "engine/json.h"

namespace {

std::string run_model(const std::string& dir) {
  std::ifstream in(dir + "/config.json");
  if (!in) return "";
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    engine::json::Value v = engine::json::parse(ss.str());
    if (const engine::json::Value* m = v.find("model")) return m->as_string("model");
  } catch (const engine::EngineError&) {
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  std::string out = "runs.png", title, labels_arg;
  std::vector<std::string> dirs;
  int64_t width = 1100, height = 440;
  CLI::App cli{
      "Reads metrics.csv (and the model name from config.json) of each run folder written by train_fmnist\n"
      "and draws them on one figure: training loss, and error (%) with thin dashed training error and\n"
      "bold test error. Writes a PNG and an SVG beside it.",
      "plot_runs"};
  app::configure_cli(cli, "plot_runs RUN_DIR [RUN_DIR...] [options]");
  cli.add_option("RUN_DIR", dirs, "run folders");
  app::add_option(cli, "out", "FILE", "Output PNG (default runs.png; the SVG gets the same name with .svg).",
                  [&](const std::string& v) { out = v; });
  app::add_option(cli, "labels", "A,B,...",
                  "Legend labels, one per run (default: model names, with the folder when repeated).",
                  [&](const std::string& v) { labels_arg = v; });
  app::add_option(cli, "title", "TEXT", "Title over the error panel.", [&](const std::string& v) { title = v; });
  app::add_option(cli, "width", "PX", "Figure width (default 1100).",
                  [&](const std::string& v) { width = app::parse_int(v, "width", 300, 8192); });
  app::add_option(cli, "height", "PX", "Figure height (default 440).",
                  [&](const std::string& v) { height = app::parse_int(v, "height", 200, 8192); });
  if (std::optional<int> done = app::parse_cli(cli, argc, argv)) return *done;
  try {
    ENGINE_CHECK(!dirs.empty(), "no run folders given; see plot_runs --help");
    std::vector<std::string> labels;
    if (!labels_arg.empty()) {
      std::stringstream ss(labels_arg);
      std::string item;
      while (std::getline(ss, item, ',')) labels.push_back(item);
      ENGINE_CHECK(labels.size() == dirs.size(), "--labels has ", labels.size(), " names for ", dirs.size(), " runs");
    } else {
      for (const auto& d : dirs) {
        std::string m = run_model(d);
        labels.push_back(m.empty() ? std::filesystem::path(d).filename().string() : m);
      }
      const std::vector<std::string> models = labels;
      for (size_t i = 0; i < labels.size(); ++i) {
        int same = 0;
        for (const auto& m : models) same += m == models[i];
        if (same > 1) labels[i] += " (" + std::filesystem::path(dirs[i]).lexically_normal().filename().string() + ")";
      }
    }
    app::Axes loss_ax, err_ax;
    loss_ax.title = "training loss";
    loss_ax.xlabel = err_ax.xlabel = "epoch";
    loss_ax.integer_x = err_ax.integer_x = true;
    loss_ax.y_min = 0;
    err_ax.title = title.empty() ? "error (%): dashed train, bold test" : title;
    err_ax.y_min = 0;
    double max_epochs = 0;
    for (size_t i = 0; i < dirs.size(); ++i) {
      std::vector<app::EpochRecord> h = app::read_metrics_csv(dirs[i] + "/metrics.csv");
      ENGINE_CHECK(!h.empty(), dirs[i], "/metrics.csv has no epochs yet");
      app::Series loss{labels[i], {}, {}, app::palette(i), 2, app::Dash::solid};
      app::Series train_err{"", {}, {}, app::palette(i), 1.2, app::Dash::dashed};
      app::Series test_err{labels[i], {}, {}, app::palette(i), 2.6, app::Dash::solid};
      for (const auto& r : h) {
        loss.x.push_back(r.epoch), loss.y.push_back(r.train_loss);
        train_err.x.push_back(r.epoch), train_err.y.push_back(100 * (1 - r.train_acc));
        test_err.x.push_back(r.epoch), test_err.y.push_back(100 * (1 - r.test_acc));
        max_epochs = std::max(max_epochs, static_cast<double>(r.epoch));
      }
      const bool few = h.size() < 12;
      loss.markers = train_err.markers = test_err.markers = few;
      loss_ax.series.push_back(loss);
      err_ax.series.push_back(train_err);
      err_ax.series.push_back(test_err);
    }
    app::Figure fig;
    fig.width = static_cast<int>(width);
    fig.height = static_cast<int>(height);
    fig.panels = {loss_ax, err_ax};
    app::save_png(fig, out);
    std::string svg = std::filesystem::path(out).replace_extension(".svg").string();
    app::save_svg(fig, svg);
    fmt::print("wrote {} and {} ({} runs)\n", out, svg, dirs.size());
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "plot_runs: error: {}\n", e.what());
    return 2;
  }
}
