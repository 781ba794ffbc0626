#include "apps/common/cli.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "engine/error.h"

namespace app {

using engine::cat;

Cli::Cli(std::string program, std::string usage, std::string description)
    : program_(std::move(program)), usage_(std::move(usage)), description_(std::move(description)) {}

void Cli::add(CliOption opt) { options_.push_back(std::move(opt)); }

const CliOption* Cli::find(const std::string& name) const {
  for (const auto& o : options_)
    if (o.name == name) return &o;
  return nullptr;
}

namespace {
// Edit distance, for "did you mean".
size_t distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}
}  // namespace

std::vector<std::string> Cli::parse(int argc, const char* const* argv) {
  std::vector<std::string> positional;
  bool options_done = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (options_done || arg.size() < 2 || arg[0] != '-' || (arg[1] != '-' && arg != "-h")) {
      positional.push_back(arg);
      continue;
    }
    if (arg == "--") {
      options_done = true;
      continue;
    }
    if (arg == "-h" || arg == "--help") {
      help_ = true;
      return positional;
    }
    std::string name = arg.substr(2), value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    const CliOption* opt = find(name);
    if (!opt) {
      std::string best;
      size_t best_d = 3;
      for (const auto& o : options_) {
        size_t d = distance(name, o.name);
        if (d < best_d) best_d = d, best = o.name;
      }
      engine::fail(cat("unknown option --", name, best.empty() ? "" : cat(" (did you mean --", best, "?)"), "; see ",
                       program_, " --help"));
    }
    if (opt->metavar.empty()) {
      ENGINE_CHECK(!has_value, "--", name, " is a switch and takes no value");
    } else if (!has_value) {
      ENGINE_CHECK(i + 1 < argc, "--", name, " needs a value (", opt->metavar, ")");
      value = argv[++i];
    }
    opt->apply(value);
    given_.insert(name);
  }
  return positional;
}

std::string Cli::help() const {
  std::ostringstream os;
  os << "usage: " << usage_ << "\n\n" << description_ << "\n\noptions:\n";
  const size_t col = 28, width = 110;
  auto wrap = [&](const std::string& text, size_t indent, size_t first_used) {
    std::istringstream words(text);
    std::string w;
    size_t used = first_used;
    bool first = true;
    while (words >> w) {
      if (!first && used + 1 + w.size() > width) {
        os << "\n" << std::string(indent, ' ');
        used = indent;
      } else if (!first) {
        os << ' ';
        ++used;
      }
      os << w;
      used += w.size();
      first = false;
    }
    os << "\n";
  };
  std::vector<CliOption> all = options_;
  all.push_back({"help", "", "Show this help and exit.", nullptr});
  for (const auto& o : all) {
    std::string head = "  --" + o.name + (o.metavar.empty() ? "" : " " + o.metavar);
    if (head.size() + 2 > col) {
      os << head << "\n" << std::string(col, ' ');
    } else {
      os << head << std::string(col - head.size(), ' ');
    }
    wrap(o.help, col, col);
  }
  if (!epilog_.empty()) os << "\n" << epilog_ << "\n";
  return os.str();
}

int64_t parse_int(const std::string& s, const std::string& flag, int64_t min, int64_t max) {
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  ENGINE_CHECK(!s.empty() && end && *end == '\0' && errno == 0, "--", flag, ": '", s, "' is not an integer");
  ENGINE_CHECK(v >= min && v <= max, "--", flag, ": ", v, " is outside [", min, ", ", max, "]");
  return v;
}

double parse_double(const std::string& s, const std::string& flag, double min, double max) {
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  ENGINE_CHECK(!s.empty() && end && *end == '\0' && errno == 0 && std::isfinite(v), "--", flag, ": '", s,
               "' is not a number");
  ENGINE_CHECK(v >= min && v <= max, "--", flag, ": ", s, " is outside [", min, ", ", max, "]");
  return v;
}

std::string parse_choice(const std::string& s, const std::string& flag, const std::vector<std::string>& choices) {
  for (const auto& c : choices)
    if (c == s) return s;
  engine::fail(cat("--", flag, ": '", s, "' is not one of: ", join(choices)));
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

}  // namespace app
