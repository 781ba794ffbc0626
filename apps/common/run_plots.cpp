// Figures of train_fmnist runs: one run's curves (curves.png) and several runs side by side (plot_runs, and the
// reproduction report).
#include <filesystem>
#include <set>

#include "apps/common/config.h"
#include "apps/common/plot.h"
#include "engine/error.h"

namespace app {

using engine::cat;
namespace fs = std::filesystem;

RunData load_run(const std::string& dir, const std::string& label) {
  RunData r;
  r.dir = dir;
  r.label = label;
  const bool have_epochs = fs::exists(dir + "/metrics.csv"), have_steps = fs::exists(dir + "/steps.csv");
  ENGINE_CHECK(have_epochs || have_steps, dir,
               ": no metrics.csv or steps.csv (is this a run folder written by train_fmnist?)");
  if (have_epochs) r.epochs = read_metrics_csv(dir + "/metrics.csv");
  if (have_steps) r.steps = read_steps_csv(dir + "/steps.csv");
  // iteration = e * steps_per_epoch + s and epoch = e + s / steps_per_epoch in every record.
  if (!r.steps.empty() && r.steps.back().epoch > 0)
    r.steps_per_epoch = std::llround(r.steps.back().iteration / r.steps.back().epoch);
  return r;
}

const std::vector<std::string>& run_metric_names() {
  static const std::vector<std::string> names = {"train_loss", "train_error", "train_acc",  "val_loss", "val_error",
                                                 "val_acc",    "test_loss",   "test_error", "test_acc", "lr"};
  return names;
}

namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// y of a metric: errors and accuracies in %, losses and lr as they are.
double metric_value(const std::string& m, double loss, double acc, double lr) {
  if (ends_with(m, "_loss")) return loss;
  if (ends_with(m, "_error")) return 100 * (1 - acc);
  if (ends_with(m, "_acc")) return 100 * acc;
  return lr;
}

std::string pretty(const std::string& m) {
  std::string s = m;
  for (char& c : s)
    if (c == '_') c = ' ';
  if (ends_with(s, " acc")) s += "uracy";
  return s;
}

struct Style {
  double width;
  Dash dash;
};

// The paper's Fig. 6: training thin and dashed, test bold; validation dotted, lr dash-dot. The first metric of
// each kind takes its kind's style, any further one the first style no other metric uses.
std::vector<Style> metric_styles(const std::vector<std::string>& metrics) {
  const std::vector<Style> all = {{1.2, Dash::dashed},  {2.6, Dash::solid}, {1.8, Dash::dotted},
                                  {1.6, Dash::dashdot}, {1.2, Dash::solid}, {2.4, Dash::dashed}};
  std::vector<int> pick(metrics.size(), -1);
  std::set<int> used;
  for (size_t i = 0; i < metrics.size(); ++i) {
    const std::string& m = metrics[i];
    const int kind = m.rfind("train", 0) == 0 ? 0 : m.rfind("test", 0) == 0 ? 1 : m.rfind("val", 0) == 0 ? 2 : 3;
    if (used.insert(kind).second) pick[i] = kind;
  }
  for (size_t i = 0; i < metrics.size(); ++i)
    for (int k : {4, 5, 3, 2, 1, 0})
      if (pick[i] < 0 && used.insert(k).second) pick[i] = k;
  std::vector<Style> out;
  for (int k : pick) out.push_back(all[k < 0 ? 0 : k]);
  return out;
}

std::string y_label(const std::vector<std::string>& metrics) {
  auto all = [&](const char* tail) {
    for (const auto& m : metrics)
      if (!ends_with(m, tail)) return false;
    return true;
  };
  if (all("_error")) return "error (%)";
  if (all("_acc")) return "accuracy (%)";
  if (all("_loss")) return "loss";
  std::vector<std::string> names;
  for (const auto& m : metrics) names.push_back(pretty(m));
  return join(names, ", ");
}

}  // namespace

Figure runs_figure(const std::vector<std::vector<RunData>>& panels, const std::vector<std::string>& panel_titles,
                   const RunPlotOptions& opt) {
  ENGINE_CHECK(!panels.empty(), "runs_figure: no panels");
  ENGINE_CHECK(panel_titles.empty() || panel_titles.size() == panels.size(), "runs_figure: ", panel_titles.size(),
               " panel titles for ", panels.size(), " panels");
  ENGINE_CHECK(opt.x == "iterations" || opt.x == "epochs", "--x '", opt.x, "' is not iterations or epochs");
  ENGINE_CHECK(!opt.metrics.empty(), "no metrics to plot; choose from ", join(run_metric_names()));
  for (const auto& m : opt.metrics)
    ENGINE_CHECK(std::find(run_metric_names().begin(), run_metric_names().end(), m) != run_metric_names().end(),
                 "--metric '", m, "' is not one of ", join(run_metric_names()));
  const bool by_iter = opt.x == "iterations";
  const std::vector<Style> styles = metric_styles(opt.metrics);
  Figure fig;
  fig.width = static_cast<int>(std::clamp<int64_t>(opt.panel_width * static_cast<int64_t>(panels.size()), 100, 8192));
  fig.height = opt.height;
  fig.scale = opt.scale;
  fig.title = opt.title;
  fig.subtitle = opt.subtitle;
  fig.share_x = fig.share_y = true;
  for (size_t p = 0; p < panels.size(); ++p) {
    Axes ax;
    ax.title = panel_titles.empty() ? "" : panel_titles[p];
    ax.xlabel = by_iter ? "iterations" : "epoch";
    ax.ylabel = y_label(opt.metrics);
    ax.integer_x = !by_iter;
    ax.x_min = 0;
    ax.log_y = opt.log_y;
    ax.y_min = std::isnan(opt.y_min) && !opt.log_y ? 0 : opt.y_min;
    ax.y_max = opt.y_max;
    for (size_t i = 0; i < panels[p].size(); ++i) {
      const RunData& run = panels[p][i];
      const uint32_t rgb = palette(i);
      for (size_t k = 0; k < opt.metrics.size(); ++k) {
        const std::string& m = opt.metrics[k];
        Series s{"", {}, {}, rgb, styles[k].width, styles[k].dash};
        const bool from_steps = (m.rfind("train", 0) == 0 || m == "lr") && !run.steps.empty();
        if (from_steps) {
          auto value = [&](const StepRecord& r) { return metric_value(m, r.train_loss, r.train_acc, r.lr); };
          const bool smooth = opt.smooth > 1 && m != "lr";
          // Weighted by each window's examples, so the mean is over the examples of the last `smooth` iterations.
          auto weight = [](const StepRecord& r) { return r.examples > 0 ? double(r.examples) : 1.0; };
          size_t first = 0;  // the oldest record inside the trailing window
          double sum = 0, total = 0;
          for (const StepRecord& r : run.steps) {
            s.x.push_back(by_iter ? static_cast<double>(r.iteration) : r.epoch);
            if (!smooth) {
              s.y.push_back(value(r));
              continue;
            }
            sum += weight(r) * value(r), total += weight(r);
            for (; run.steps[first].iteration <= r.iteration - opt.smooth; ++first)
              sum -= weight(run.steps[first]) * value(run.steps[first]), total -= weight(run.steps[first]);
            s.y.push_back(sum / total);
          }
        } else {
          ENGINE_CHECK(!by_iter || run.steps_per_epoch > 0, run.dir,
                       ": no steps.csv to place epochs on an iteration axis (a run from before per-step metrics?); "
                       "plot it with --x epochs");
          for (const EpochRecord& r : run.epochs) {
            s.x.push_back(by_iter ? static_cast<double>(r.epoch * run.steps_per_epoch) : r.epoch);
            const bool train = m.rfind("train", 0) == 0, val = m.rfind("val", 0) == 0;
            s.y.push_back(metric_value(m,
                                       train ? r.train_loss
                                       : val ? r.val_loss
                                             : r.test_loss,
                                       train ? r.train_acc
                                       : val ? r.val_acc
                                             : r.test_acc,
                                       r.lr));
          }
          s.markers = run.epochs.size() < 12;
        }
        ax.series.push_back(std::move(s));
      }
    }
    // The legend: one entry per run (its colour), then one per metric (its line style) when there are several.
    for (size_t i = 0; i < panels[p].size(); ++i)
      ax.series.push_back({panels[p][i].label, {}, {}, palette(i), 2.2, Dash::solid});
    if (opt.metrics.size() > 1)
      for (size_t k = 0; k < opt.metrics.size(); ++k)
        ax.series.push_back({pretty(opt.metrics[k]), {}, {}, 0x555555, styles[k].width, styles[k].dash});
    fig.panels.push_back(std::move(ax));
  }
  return fig;
}

std::string run_title(const TrainConfig& cfg) {
  // What the figure's reader needs to know about the recipe: the essentials always, anything else that differs
  // from the default; nothing about where or how fast it ran.
  static const std::set<std::string> always = {"lr", "epochs", "batch-size", "momentum", "weight-decay", "resize"};
  static const std::set<std::string> never = {"data", "out",     "resume",         "device",    "conv",
                                              "tf32", "threads", "detect-anomaly", "log-every", "cuda-graphs"};
  const TrainConfig defaults;
  std::vector<std::string> parts;
  for (const ConfigField& f : train_config_fields()) {
    if (never.count(f.name)) continue;
    const std::string v = f.get(cfg);
    if (!always.count(f.name) && v == f.get(defaults)) continue;
    if (f.kind == ConfigField::Kind::boolean)
      parts.push_back(v == "true" ? f.name : "no " + f.name);
    else
      parts.push_back(f.name + " " + v);
  }
  return cfg.model + "\n" + join(parts);
}

void plot_run_curves(const std::string& dir, const std::string& title, const std::vector<EpochRecord>& history,
                     int64_t epochs) {
  std::vector<StepRecord> steps;
  if (fs::exists(dir + "/steps.csv")) steps = read_steps_csv(dir + "/steps.csv");
  Axes ax;
  ax.xlabel = "epoch";
  ax.integer_x = true;
  ax.x_min = 0;
  ax.y_min = 0;
  Series loss{"train loss", {}, {}, 0x1f77b4, 2, Dash::solid};
  Series train_acc{"train acc", {}, {}, 0xbf3fbf, 2, Dash::dashed};
  Series val_acc{"val acc", {}, {}, 0xd62728, 2, Dash::dotted, true};
  Series test_acc{"test acc", {}, {}, 0x2ca02c, 2, Dash::dashdot, true};
  double ymax = 1.0, xmax = 1.0;
  if (!steps.empty()) {
    for (const StepRecord& r : steps) {
      loss.x.push_back(r.epoch), loss.y.push_back(r.train_loss);
      train_acc.x.push_back(r.epoch), train_acc.y.push_back(r.train_acc);
      if (std::isfinite(r.train_loss)) ymax = std::max(ymax, r.train_loss);
      xmax = std::max(xmax, r.epoch);
    }
    loss.markers = train_acc.markers = steps.size() < 12;
  } else {  // a run from before steps.csv
    for (const EpochRecord& r : history) {
      loss.x.push_back(r.epoch), loss.y.push_back(r.train_loss);
      train_acc.x.push_back(r.epoch), train_acc.y.push_back(r.train_acc);
    }
    loss.markers = train_acc.markers = history.size() < 12;
  }
  bool has_val = false;
  for (const EpochRecord& r : history) {
    val_acc.x.push_back(r.epoch), val_acc.y.push_back(r.val_acc);
    test_acc.x.push_back(r.epoch), test_acc.y.push_back(r.test_acc);
    if (std::isfinite(r.train_loss)) ymax = std::max(ymax, r.train_loss);
    xmax = std::max(xmax, static_cast<double>(r.epoch));
    has_val = has_val || std::isfinite(r.val_acc);
  }
  ax.x_max = std::max(static_cast<double>(epochs), std::ceil(xmax - 1e-9));
  ax.y_max = std::ceil(ymax * 10 - 1e-9) / 10;
  ax.series = {loss, train_acc};
  if (has_val) ax.series.push_back(val_acc);
  ax.series.push_back(test_acc);
  Figure fig;
  fig.height = 460;
  const size_t nl = title.find('\n');
  fig.title = title.substr(0, nl);
  if (nl != std::string::npos) fig.subtitle = title.substr(nl + 1);
  fig.panels = {ax};
  save_figure(fig, dir + "/curves.png");
  save_figure(fig, dir + "/curves.svg");
}

}  // namespace app
