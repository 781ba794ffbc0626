// The report of `reproduce` (DIR/report.md, docs/reproduction.md): for every experiment and scale found under DIR,
// the paper-style tables beside the published numbers, the degradation verdict, the figures and, for every
// number, its scale, epochs, device, commit and command. Built only from the run folders; trains nothing.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "apps/common/experiments.h"
#include "apps/common/files.h"
#include "apps/common/metrics.h"
#include "engine/error.h"
#include "models/registry.h"

namespace app {

using engine::cat;
namespace fs = std::filesystem;
using Json = nlohmann::json;

// ---------------- report ----------------
namespace {

struct RunRecord {
  RunSpec spec;
  std::string dir;
  bool present = false;  // a metrics.csv with at least one epoch
  std::string status;    // finished | partial | diverged | missing
  int64_t planned_epochs = 0;
  std::vector<EpochRecord> history;
  Json run_json, config;
  std::vector<std::string> differs;  // configuration fields that differ from the current definition
};

RunRecord read_run(const std::string& exp_dir, const RunSpec& spec) {
  RunRecord r;
  r.spec = spec;
  r.dir = exp_dir + "/" + spec.name;
  r.planned_epochs = spec.cfg.epochs;
  r.status = "missing";
  const std::string csv = r.dir + "/metrics.csv";
  r.run_json = read_json_file(r.dir + "/run.json");
  r.config = read_json_file(r.dir + "/config.json");
  if (r.config.is_object()) {
    r.planned_epochs = r.config.value("epochs", spec.cfg.epochs);
    for (const auto& f : train_config_fields()) {
      if ((f.may_change_on_resume && f.name != "epochs") || f.name == "resume" || !r.config.contains(f.name)) continue;
      const Json& v = r.config[f.name];
      TrainConfig c = spec.cfg;
      try {
        f.set(c, v.is_string() ? v.get<std::string>() : v.dump());
      } catch (const engine::EngineError&) {
        r.differs.push_back(f.name);
        continue;
      }
      if (f.get(c) != f.get(spec.cfg)) r.differs.push_back(f.name + " " + f.get(c));
    }
  }
  if (fs::exists(csv)) r.history = read_metrics_csv(csv);
  r.present = !r.history.empty();
  const std::string s = r.run_json.is_object() ? r.run_json.value("status", "") : "";
  if (s == "diverged")
    r.status = "diverged";
  else if (r.present)
    r.status = static_cast<int64_t>(r.history.size()) >= r.planned_epochs ? "finished" : "partial";
  return r;
}

std::string pct(double v, int digits = 2) {
  if (!std::isfinite(v)) return "—";
  return fmt::format("{:.{}f}", v, digits);
}

std::string duration(double seconds) {
  if (!std::isfinite(seconds) || seconds <= 0) return "—";
  const int64_t s = static_cast<int64_t>(std::llround(seconds));
  return fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
}

int64_t parameters_of(const RunRecord& r) {
  if (r.run_json.is_object() && r.run_json.contains("parameters")) return r.run_json["parameters"].get<int64_t>();
  // Building a net to count its parameters takes a while for the big ones (He init draws every weight): once each.
  static std::map<std::string, int64_t> counted;
  auto it = counted.find(r.spec.cfg.model);
  if (it != counted.end()) return it->second;
  engine::default_generator().seed(0);
  return counted[r.spec.cfg.model] = models::create(r.spec.cfg.model, models::ModelConfig{})->num_parameters();
}

// Distinct values of one session field ("device", "commit", "command") over a run's invocations.
std::vector<std::string> session_values(const RunRecord& r, const char* key) {
  std::vector<std::string> out;
  if (!r.run_json.is_object() || !r.run_json.contains("sessions")) return out;
  for (const auto& s : r.run_json["sessions"]) {
    const std::string v = s.value(key, "");
    if (!v.empty() && std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
  }
  return out;
}

std::string or_unknown(const std::vector<std::string>& v) { return v.empty() ? "not recorded" : join(v, "; "); }
std::string recorded(const RunRecord& r, const char* key) {
  return r.present ? or_unknown(session_values(r, key)) : std::string("—");
}

std::string epochs_cell(const RunRecord& r) {
  if (!r.present) return "—";
  std::string s = cat(r.history.size());
  if (r.status != "finished") s += cat(" of ", r.planned_epochs);
  return s;
}

// Every number's provenance: one row per run.
std::string provenance_table(const std::vector<RunRecord>& runs) {
  std::string out =
      "| run | status | epochs | wall time | device | commit | command (equivalent single run) |\n"
      "| --- | --- | --- | --- | --- | --- | --- |\n";
  double total = 0;
  for (const auto& r : runs) {
    const double wall = r.present ? r.history.back().elapsed_seconds : NAN;
    if (r.present) total += wall;
    std::string cmd = r.run_json.is_object() ? r.run_json.value("train_command", "") : "";
    if (cmd.empty()) cmd = train_command(r.spec.cfg);
    out +=
        cat("| ", r.spec.name, " | ", r.status, " | ", epochs_cell(r), " | ", duration(wall), " | ",
            recorded(r, "device"), " | ", recorded(r, "commit"), " | `", cmd, "`",
            r.differs.empty() ? std::string() : cat(" (differs from the definition: ", join(r.differs), ")"), " |\n");
  }
  return out + cat("\nWall time of the runs present, in all: ", duration(total), ".\n");
}

std::string missing_line(const std::vector<RunRecord>& runs) {
  std::vector<std::string> missing, partial, diverged;
  for (const auto& r : runs) {
    if (r.status == "diverged")
      diverged.push_back(r.spec.name);
    else if (!r.present)
      missing.push_back(r.spec.name);
    else if (r.status == "partial")
      partial.push_back(cat(r.spec.name, " (", r.history.size(), " of ", r.planned_epochs, " epochs)"));
  }
  std::string out;
  if (!missing.empty()) out += "**Missing runs:** " + join(missing) + ".\n";
  if (!partial.empty()) out += "**Unfinished runs** (numbers at their last epoch so far): " + join(partial) + ".\n";
  if (!diverged.empty())
    out += "**Diverged runs** (numbers at their last good epoch; see run.json; delete the folder to retry): " +
           join(diverged) + ".\n";
  if (out.empty()) out = "All runs of this experiment are finished.\n";
  return out;
}

// What the trainer noted while a run went on (an evaluation loss above the divergence bound, training unharmed).
std::string notices_list(const std::vector<RunRecord>& runs) {
  std::string out;
  for (const auto& r : runs) {
    if (!r.run_json.is_object() || !r.run_json.contains("sessions")) continue;
    for (const auto& s : r.run_json["sessions"])
      if (s.contains("notices"))
        for (const auto& n : s["notices"]) out += cat("- ", r.spec.name, ": ", n.get<std::string>(), "\n");
  }
  return out.empty() ? out : "Notices printed during training:\n\n" + out + "\n";
}

std::string commands_used(const std::vector<RunRecord>& runs) {
  std::vector<std::string> cmds;
  for (const auto& r : runs)
    for (const auto& c : session_values(r, "command"))
      if (std::find(cmds.begin(), cmds.end(), c) == cmds.end()) cmds.push_back(c);
  if (cmds.empty()) return "";
  std::string out = "Commands that produced these runs:\n\n";
  for (const auto& c : cmds) out += "    " + c + "\n";
  return out + "\n";
}

const RunRecord* find_run(const std::vector<RunRecord>& runs, const std::string& name) {
  for (const auto& r : runs)
    if (r.spec.name == name) return &r;
  return nullptr;
}

std::string degradation_section(const std::vector<RunRecord>& runs, Scale scale) {
  std::string out =
      "Our final training error (running error over the last epoch's augmented batches, in training mode: the "
      "paper's thin curves) and test error at the last epoch, beside the paper's CIFAR-10 test error (Table 6; "
      "the paper plots the plain nets in Fig. 6 but tabulates no numbers for them).\n\n"
      "| net | depth | parameters | epochs | train error (%) | test error (%) | paper CIFAR-10 test error (%) |\n"
      "| --- | --- | --- | --- | --- | --- | --- |\n";
  for (const auto& r : runs) {
    const double paper = paper_cifar_test_error(r.spec.family, r.spec.depth);
    const EpochRecord* last = r.present ? &r.history.back() : nullptr;
    out += cat("| ", r.spec.name, " | ", r.spec.depth, " | ", parameters_of(r), " | ", epochs_cell(r), " | ",
               last ? pct(100 * (1 - last->train_acc)) : "—", " | ", last ? pct(100 * (1 - last->test_acc)) : "—",
               " | ", std::isfinite(paper) ? pct(paper) : std::string("not tabulated"), " |\n");
  }
  out += "\n";
  const RunRecord *p20 = find_run(runs, "plain20"), *p56 = find_run(runs, "plain56");
  const RunRecord *r20 = find_run(runs, "resnet20"), *r56 = find_run(runs, "resnet56");
  auto finished = [](const RunRecord* r) { return r && r->status == "finished"; };
  auto train_err = [](const RunRecord* r) { return 100 * (1 - r->history.back().train_acc); };
  // The paper's effect has two halves: the deeper plain net trains worse, and the deeper residual net does not.
  // Only both together separate degradation from a deeper net simply needing more iterations.
  if (finished(p20) && finished(p56)) {
    const double a = train_err(p20), b = train_err(p56);
    const bool residual = finished(r20) && finished(r56);
    const double c = residual ? train_err(r20) : NAN, d = residual ? train_err(r56) : NAN;
    const std::string plain = cat("plain-56's final training error is ", pct(b), "% against plain-20's ", pct(a), "%");
    const std::string shortcuts =
        residual ? cat("; with shortcuts, resnet56 ", pct(d), "% against resnet20 ", pct(c), "%") : std::string();
    const std::string head = cat("**Degradation at the ", scale_name(scale), " scale: ");
    if (b <= a) {
      out +=
          cat(head, "the effect does not show.** ", plain, shortcuts, " (the deeper plain net trains no worse here).");
    } else if (!residual) {
      out += cat(head, "half of the effect shows.** ", plain,
                 " (deeper is worse to train, as in the paper's Fig. 6); resnet20 and resnet56 must both be finished "
                 "to tell degradation from a deeper net's need for more iterations.");
    } else if (d <= c) {
      out += cat(head, "the effect shows.** ", plain, shortcuts,
                 ": the deeper plain net trains worse and the deeper residual net does not, as in the paper's Fig. 6.");
    } else {
      out += cat(head, "not separated from under-training.** ", plain, shortcuts,
                 ": the deeper net trains worse in both families, so at this scale depth slows training whatever the "
                 "shortcuts (the plain nets lose ",
                 pct(b - a), " points, the residual nets ", pct(d - c),
                 "). The paper's effect, a deeper plain net worse while the deeper residual net is better, is not "
                 "shown here; it needs more iterations (the full scale).");
    }
    if (!p20->differs.empty() || !p56->differs.empty())
      out +=
          " These runs differ from the definition (see the table below), so this is no verdict on the "
          "definition's scale.";
    out += "\n\n";
    // Depth by depth: what the shortcuts buy at the same depth (the paper's Fig. 6, left panel against right).
    std::vector<std::string> gaps;
    for (int depth : {20, 32, 44, 56, 110}) {
      const RunRecord *p = find_run(runs, cat("plain", depth)), *r = find_run(runs, cat("resnet", depth));
      if (finished(p) && finished(r))
        gaps.push_back(cat(depth, " layers ", pct(train_err(p) - train_err(r)), " points"));
    }
    if (gaps.size() > 1)
      out += cat("Plain minus residual final training error, at the same depth: ", join(gaps, ", "), ".\n\n");
  } else {
    out += cat("**Degradation at the ", scale_name(scale),
               " scale: not decided yet** — plain20 and plain56 must both be finished.\n\n");
  }
  return out;
}

// Published figures the depth table is compared with.
std::string depth_reference(int depth) {
  switch (depth) {
    case 18:
      return "0.890";
    case 34:
      return "0.902";
    case 50:
      return "0.898";
    case 101:
      return "0.811 (basic blocks)";
    case 152:
      return "0.853 (basic blocks)";
    default:
      return "—";
  }
}

std::string depth_section(const std::vector<RunRecord>& runs) {
  std::string out =
      "Test accuracy at the last epoch (never the best epoch), training speed (median examples/s over the "
      "epochs) and wall time, beside published Fashion-MNIST figures: a students' reproduction of Table 1 "
      "(the seeds: 18/34/50 with the paper's blocks; their \"101/152\" used basic blocks) and the "
      "Fashion-MNIST benchmark's ResNet-18 (0.949).\n\n"
      "| net | px | epochs | test acc (last epoch) | examples/s | wall time | device | published | benchmark |\n"
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
  for (const auto& r : runs) {
    const EpochRecord* last = r.present ? &r.history.back() : nullptr;
    std::vector<double> speeds;
    for (const auto& h : r.history) speeds.push_back(h.examples_per_sec);
    std::sort(speeds.begin(), speeds.end());
    const double speed = speeds.empty() ? NAN : speeds[speeds.size() / 2];
    out += cat("| ", r.spec.name, " | ", r.spec.cfg.resize, " | ", epochs_cell(r), " | ",
               last ? pct(last->test_acc, 4) : "—", " | ", pct(speed, 0), " | ",
               duration(last ? last->elapsed_seconds : NAN), " | ", recorded(r, "device"), " | ",
               depth_reference(r.spec.depth), " | ", r.spec.depth == 18 ? "0.949" : "—", " |\n");
  }
  return out + "\n";
}

std::string recipe_section(const std::vector<RunRecord>& runs) {
  std::string out =
      "| net | epochs | train acc | test acc (last epoch) | goal | wall time | device |\n"
      "| --- | --- | --- | --- | --- | --- | --- |\n";
  for (const auto& r : runs) {
    const EpochRecord* last = r.present ? &r.history.back() : nullptr;
    out += cat("| ", r.spec.name, " | ", epochs_cell(r), " | ", last ? pct(last->train_acc, 4) : "—", " | ",
               last ? pct(last->test_acc, 4) : "—", " | 0.94 | ", duration(last ? last->elapsed_seconds : NAN), " | ",
               recorded(r, "device"), " |\n");
  }
  out += "\n";
  return out;
}

}  // namespace

std::string build_report(const std::string& dir, const FigureWriter& figures, const std::string& link_base) {
  ENGINE_CHECK(fs::is_directory(dir), "report: ", dir, " is not a folder (give the --out DIR of reproduce)");
  std::string out =
      "# Reproducing He et al. 2016 on Fashion-MNIST\n\n"
      "Rebuilt by `reproduce report " +
      dir + "` on " + utc_now() +
      " from the run folders found there. Every accuracy is at the last epoch of its run (or the last epoch "
      "reached, for an unfinished run), never the best epoch on the test set.\n\n";
  for (const auto& def : experiment_defs()) {
    bool any = false;
    for (Scale scale : {Scale::quick, Scale::full}) {
      const std::string group = def.name + "-" + scale_name(scale);
      const std::string exp_dir = dir + "/" + group;
      if (!fs::is_directory(exp_dir)) continue;
      any = true;
      std::vector<RunRecord> runs;
      for (const auto& spec : experiment_runs(def.name, scale)) runs.push_back(read_run(exp_dir, spec));
      out += cat("## ", def.name, " (", scale_name(scale), " scale): ", def.title, "\n\n");
      if (def.name == "degradation") {
        out += degradation_section(runs, scale);
        std::vector<FigureRun> present;
        for (const auto& r : runs)
          if (r.present) {
            const int64_t n = r.config.is_object() ? r.config.value("limit-train", int64_t{0}) : 0;
            const int64_t bs = r.config.is_object() ? r.config.value("batch-size", int64_t{128}) : 128;
            present.push_back({r.spec.name, r.spec.family, r.dir, steps_per_epoch(n > 0 ? n : 60000, bs, false)});
          }
        if (figures && !present.empty()) {
          for (const auto& f : figures(exp_dir, present))
            out += cat("![", def.name, "](", link_base.empty() ? "" : link_base + "/", group, "/", f, ")\n\n");
        } else {
          out += "Figures (Fig. 6 style) are not drawn by this build yet.\n\n";
        }
      } else if (def.name == "depth") {
        out += depth_section(runs);
      } else {
        out += recipe_section(runs);
      }
      out += missing_line(runs) + "\n";
      out += notices_list(runs);
      out += cat("The definition (`reproduce --help`):\n\n```\n", def.help, "\n```\n\n");
      out += provenance_table(runs) + "\n";
      out += commands_used(runs);
    }
    if (!any)
      out += cat("## ", def.name, ": not run\n\nNo folder ", def.name, "-quick or ", def.name, "-full in ", dir,
                 "; run `reproduce ", def.name, " --out ", dir, "`.\n\n");
  }
  return out;
}

std::string write_report(const std::string& dir, const std::string& path, const FigureWriter& figures) {
  const std::string to = path.empty() ? dir + "/report.md" : path;
  const fs::path from = fs::absolute(fs::path(to)).parent_path();
  std::string base = fs::absolute(dir).lexically_normal().lexically_relative(from.lexically_normal()).generic_string();
  if (base == ".") base.clear();
  write_file_atomic(to, build_report(dir, figures, base));
  return to;
}

}  // namespace app
