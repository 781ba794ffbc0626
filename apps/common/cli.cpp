#include "apps/common/cli.h"

#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <regex>
#include <sstream>

#include "engine/error.h"

namespace app {

using engine::cat;

namespace {

// The help layout of every program: the usage lines, the description, one paragraph per option (name and
// metavar in a column of 28, the text wrapped at 110), --help last, then the epilog. Positionals are described
// by the usage lines and the description.
class HelpFormatter : public CLI::FormatterBase {
 public:
  explicit HelpFormatter(std::string usage) : usage_(std::move(usage)) {}

  std::string make_help(const CLI::App* cli, std::string, CLI::AppFormatMode) const override {
    std::string out = fmt::format("usage: {}\n\n{}\n\noptions:\n", usage_, cli->get_description());
    std::vector<const CLI::Option*> opts = cli->get_options([](const CLI::Option* o) { return o->nonpositional(); });
    std::stable_partition(opts.begin(), opts.end(), [cli](const CLI::Option* o) { return o != cli->get_help_ptr(); });
    for (const CLI::Option* o : opts) out += option(*o);
    if (!cli->get_footer().empty()) out += "\n" + cli->get_footer() + "\n";
    return out;
  }

 private:
  static constexpr size_t kColumn = 28, kWidth = 110;

  static std::string option(const CLI::Option& o) {
    std::string head = "  ";
    for (const auto& s : o.get_snames()) head += "-" + s + ", ";
    for (const auto& l : o.get_lnames()) head += "--" + l + ", ";
    head.resize(head.size() - 2);
    if (o.get_type_size() != 0) head += " " + o.get_type_name();
    std::string out = head;
    if (head.size() + 2 > kColumn)
      out += "\n" + std::string(kColumn, ' ');
    else
      out += std::string(kColumn - head.size(), ' ');
    return out + wrap(o.get_description(), kColumn) + "\n";
  }

  static std::string wrap(const std::string& text, size_t indent) {
    std::istringstream words(text);
    std::string w, out;
    size_t used = indent;
    while (words >> w) {
      if (!out.empty() && used + 1 + w.size() > kWidth) {
        out += "\n" + std::string(indent, ' ');
        used = indent;
      } else if (!out.empty()) {
        out += ' ';
        ++used;
      }
      out += w;
      used += w.size();
    }
    return out;
  }

  std::string usage_;
};

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

std::string see_help(const CLI::App& cli) { return cat("; see ", cli.get_name(), " --help"); }

// With extras allowed, CLI11 leaves unknown options and surplus positionals to us: we can name the nearest
// option, where CLI11 would only list what it did not expect.
void check_remaining(const CLI::App& cli) {
  bool options_done = false;
  for (const std::string& arg : cli.remaining()) {
    if (arg == "--") {
      options_done = true;
      continue;
    }
    if (options_done || arg.size() < 2 || arg[0] != '-')
      throw CLI::ExtrasError(cat("unexpected argument '", arg, "'", see_help(cli)), CLI::ExitCodes::ExtrasError);
    const std::string name = arg.substr(0, arg.find('='));
    const std::string bare = name.substr(name.find_first_not_of('-'));
    std::string best;
    size_t best_d = 3;
    for (const CLI::Option* o : cli.get_options())
      for (const auto& l : o->get_lnames())
        if (size_t d = distance(bare, l); d < best_d) best_d = d, best = l;
    throw CLI::ExtrasError(
        cat("unknown option ", name, best.empty() ? "" : cat(" (did you mean --", best, "?)"), see_help(cli)),
        CLI::ExitCodes::ExtrasError);
  }
}

// CLI11's wording for a missing value and for a switch given a value, in the words of the rest of our errors.
std::string reword(const std::string& msg) {
  std::smatch m;
  static const std::regex missing("^(\\S+): \\d+ required (.*) missing$");
  static const std::regex override_("^-*(\\S+) was given a disallowed flag override$");
  if (std::regex_match(msg, m, missing)) return cat(m[1].str(), " needs a value (", m[2].str(), ")");
  if (std::regex_match(msg, m, override_)) return cat("--", m[1].str(), " is a switch and takes no value");
  return msg;
}

}  // namespace

void configure_cli(CLI::App& cli, const std::string& usage, const std::string& epilog) {
  cli.formatter(std::make_shared<HelpFormatter>(usage));
  cli.set_help_flag("-h,--help", "Show this help and exit.");
  cli.allow_extras();  // reported by check_remaining, with a suggestion
  cli.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  if (!epilog.empty()) cli.footer(epilog);
}

CLI::Option* add_option(CLI::App& cli, const std::string& name, const std::string& metavar, const std::string& help,
                        std::function<void(const std::string& value)> set) {
  // Our checks throw EngineError; CLI11 reports ParseErrors, and the message always names the flag.
  auto checked = [name, set = std::move(set)](const std::string& v) {
    try {
      set(v);
    } catch (const engine::EngineError& e) {
      const std::string what = e.what(), flag = "--" + name;
      throw CLI::ValidationError(what.rfind(flag, 0) == 0 ? what : cat(flag, ": ", what));
    }
  };
  if (metavar.empty())
    return cli
        .add_flag_function(
            "--" + name, [checked](int64_t) { checked(""); }, help)
        ->disable_flag_override();
  return cli.add_option_function<std::string>("--" + name, checked, help)->type_name(metavar);
}

void parse_or_throw(CLI::App& cli, int argc, const char* const* argv) {
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ArgumentMismatch& e) {
    throw CLI::ArgumentMismatch(reword(e.what()));
  }
  check_remaining(cli);
}

std::optional<int> parse_cli(CLI::App& cli, int argc, const char* const* argv) {
  try {
    parse_or_throw(cli, argc, argv);
    return std::nullopt;
  } catch (const CLI::CallForHelp&) {
    fmt::print("{}", cli.help());
    return 0;
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "{}: error: {}\n", cli.get_name(), e.what());
    return 2;
  }
}

std::set<std::string> given_options(const CLI::App& cli) {
  std::set<std::string> out;
  for (const CLI::Option* o : cli.get_options())
    if (o->count() > 0) out.insert(o->get_single_name());
  return out;
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

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

}  // namespace app
