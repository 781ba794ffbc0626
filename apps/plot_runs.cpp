// plot_runs: several runs' curves on one figure, as the paper's Fig. 6: by default thin dashed training error and
// bold test error against iterations, one colour per run; panels side by side with --panels.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>

#include "apps/common/cli.h"
#include "apps/common/metrics.h"
#include "apps/common/plot.h"
#include "engine/error.h"
#include "engine/json_strict.h"

namespace {

std::string run_model(const std::string& dir) {
  std::ifstream in(dir + "/config.json");
  if (!in) return "";
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    const nlohmann::json v = engine::parse_json(ss.str());
    if (v.is_object() && v.contains("model")) return engine::json_string(v.at("model"), "model");
  } catch (const engine::EngineError&) {
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  std::string out = "runs.png", labels_arg, metrics_arg, panels_arg, panel_titles_arg;
  std::vector<std::string> dirs;
  app::RunPlotOptions opt;
  CLI::App cli{
      "Reads steps.csv and metrics.csv (and the model name from config.json) of each run folder written by\n"
      "train_fmnist and draws them on one figure, one colour per run and one line style per metric. The\n"
      "default is the paper's Fig. 6: thin dashed training error (every K steps) and bold test error (per\n"
      "epoch) against iterations.",
      "plot_runs"};
  app::configure_cli(
      cli, "plot_runs RUN_DIR [RUN_DIR...] [options]",
      "Examples:\n"
      "  plot_runs runs/plain20 runs/plain56 runs/resnet20 runs/resnet56 --panels 2,2 --panel-titles plain,ResNet\n"
      "  plot_runs runs/a runs/b --metric train_loss --x epochs --log-y --out loss.pdf\n");
  cli.add_option("RUN_DIR", dirs, "run folders");
  auto add = [&](const char* name, const char* metavar, const std::string& help,
                 std::function<void(const std::string&)> set) { app::add_option(cli, name, metavar, help, set); };
  add("out", "FILE", "Output file; .png, .svg or .pdf (default runs.png).", [&](const std::string& v) { out = v; });
  add("metric", "M,M,...",
      "Metrics to draw (default train_error,test_error). Choices: " + app::join(app::run_metric_names()) +
          ". Errors and accuracies in %.",
      [&](const std::string& v) { metrics_arg = v; });
  add("x", "iterations|epochs", "The x axis (default iterations).", [&](const std::string& v) {
    opt.x = app::parse_choice(v, "x", {"iterations", "epochs"});
  });
  add("log-y", "", "Logarithmic y axis.", [&](const std::string&) { opt.log_y = true; });
  add("smooth", "N", "Training curves (from steps.csv) as the mean over the last N iterations (default: as logged).",
      [&](const std::string& v) { opt.smooth = app::parse_int(v, "smooth", 0, int64_t(1) << 40); });
  add("y-max", "V", "Top of the y axis, e.g. 20 to show errors below 20% as the paper's Fig. 6 (default: the data).",
      [&](const std::string& v) { opt.y_max = app::parse_double(v, "y-max", 1e-12, 1e12); });
  add("panels", "N,N,...",
      "Split the runs, in order, into panels of these sizes side by side with the same axes (e.g. 4,4: plain "
      "nets left, residual nets right). Default: one panel.",
      [&](const std::string& v) { panels_arg = v; });
  add("panel-titles", "A,B,...", "A title over each panel.", [&](const std::string& v) { panel_titles_arg = v; });
  add("labels", "A,B,...", "Legend labels, one per run (default: model names, with the folder when repeated).",
      [&](const std::string& v) { labels_arg = v; });
  add("title", "TEXT", "Title over the figure.", [&](const std::string& v) { opt.title = v; });
  add("width", "PX", "Width of each panel (default 560).",
      [&](const std::string& v) { opt.panel_width = static_cast<int>(app::parse_int(v, "width", 200, 8192)); });
  add("height", "PX", "Figure height (default 440).",
      [&](const std::string& v) { opt.height = static_cast<int>(app::parse_int(v, "height", 200, 8192)); });
  add("scale", "S", "PNG pixels per unit, e.g. 2 for a sharp figure on high-density screens (default 1).",
      [&](const std::string& v) { opt.scale = app::parse_double(v, "scale", 0.25, 8); });
  if (std::optional<int> done = app::parse_cli(cli, argc, argv)) return *done;
  try {
    ENGINE_CHECK(!dirs.empty(), "no run folders given; see plot_runs --help");
    if (!metrics_arg.empty()) opt.metrics = app::split_list(metrics_arg);
    std::vector<std::string> labels;
    if (!labels_arg.empty()) {
      labels = app::split_list(labels_arg);
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
    std::vector<int64_t> sizes;
    for (const std::string& n : app::split_list(panels_arg)) sizes.push_back(app::parse_int(n, "panels", 1, 1000));
    if (sizes.empty()) sizes.push_back(static_cast<int64_t>(dirs.size()));
    int64_t total = 0;
    for (int64_t n : sizes) total += n;
    ENGINE_CHECK(total == static_cast<int64_t>(dirs.size()), "--panels ", panels_arg, " adds up to ", total,
                 " runs but ", dirs.size(), " run folders were given");
    const std::vector<std::string> titles = app::split_list(panel_titles_arg);
    ENGINE_CHECK(titles.empty() || titles.size() == sizes.size(), "--panel-titles has ", titles.size(), " titles for ",
                 sizes.size(), " panels");
    std::vector<std::vector<app::RunData>> panels;
    size_t next = 0;
    for (int64_t n : sizes) {
      panels.emplace_back();
      for (int64_t k = 0; k < n; ++k, ++next) panels.back().push_back(app::load_run(dirs[next], labels[next]));
    }
    app::save_figure(app::runs_figure(panels, titles, opt), out);
    fmt::print("wrote {} ({} runs)\n", out, dirs.size());
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "plot_runs: error: {}\n", e.what());
    return 2;
  }
}
