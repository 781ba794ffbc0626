// A small command-line parser: --name VALUE, --name=VALUE, switches, positionals, and a --help text built from
// the same option list, so the help can never drift from what is parsed. Bad input throws EngineError with the
// flag, the value and the valid choices; apps print it and exit 2.
#pragma once
#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

namespace app {

struct CliOption {
  std::string name;                                     // without dashes: "lr"
  std::string metavar;                                  // "LR"; empty for a switch (no value)
  std::string help;                                     // one or more sentences; wrapped when printed
  std::function<void(const std::string& value)> apply;  // receives "" for switches
};

class Cli {
 public:
  Cli(std::string program, std::string usage, std::string description);
  void add(CliOption opt);
  // Parses argv[1..]; returns the positional arguments. Sets help_requested() on -h/--help (nothing else runs).
  std::vector<std::string> parse(int argc, const char* const* argv);
  bool help_requested() const { return help_; }
  bool given(const std::string& name) const { return given_.count(name) > 0; }
  const std::set<std::string>& given_names() const { return given_; }
  std::string help() const;
  void set_epilog(std::string text) { epilog_ = std::move(text); }

 private:
  const CliOption* find(const std::string& name) const;
  std::string program_, usage_, description_, epilog_;
  std::vector<CliOption> options_;
  std::set<std::string> given_;
  bool help_ = false;
};

// Value parsers that say which flag was wrong and what is allowed.
int64_t parse_int(const std::string& s, const std::string& flag, int64_t min, int64_t max);
double parse_double(const std::string& s, const std::string& flag, double min, double max);
std::string parse_choice(const std::string& s, const std::string& flag, const std::vector<std::string>& choices);
std::string join(const std::vector<std::string>& items, const std::string& sep = ", ");

}  // namespace app
