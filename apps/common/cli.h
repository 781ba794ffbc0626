// The command line of every program (apps and benchmarks) is parsed by CLI11 (Debian libcli11-dev). This file
// adds what the project wants on top: a --help laid out as usage, description, one wrapped paragraph per option
// and an epilog; errors that name the flag and what is allowed ("did you mean" for unknown options); values
// checked by our own parsers, so a field of the training table gives the same message on the command line and in
// a checkpoint's metadata; and exit status 2 for every usage error. CLI11 itself is included only where a
// CLI::App is made (mains, cli.cpp, config.cpp), not by the many files that include config.h.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace app {

// Sets `cli` up the project's way; call it before adding options. `usage` replaces CLI11's usage line (several
// lines allowed); `epilog` follows the options (examples, lists). Repeated options keep the last value.
void configure_cli(CLI::App& cli, const std::string& usage, const std::string& epilog = "");

// --name VALUE (or --name=VALUE): `set` receives the text and checks it (throwing EngineError that names the flag
// and the allowed values, as parse_int and friends do). An empty metavar makes a switch: `set` receives "" and
// --name=VALUE is refused.
CLI::Option* add_option(CLI::App& cli, const std::string& name, const std::string& metavar, const std::string& help,
                        std::function<void(const std::string& value)> set);

// Parses argv[1..]; throws CLI::ParseError with the project's messages, CLI::CallForHelp on -h/--help.
void parse_or_throw(CLI::App& cli, int argc, const char* const* argv);
// For main(): std::nullopt to go on; otherwise the exit status after printing the help to stdout (0) or
// "<program>: error: <message>" to stderr (2).
std::optional<int> parse_cli(CLI::App& cli, int argc, const char* const* argv);

// Names (without dashes) of the options given on the command line.
std::set<std::string> given_options(const CLI::App& cli);

// Value parsers that say which flag was wrong and what is allowed.
int64_t parse_int(const std::string& s, const std::string& flag, int64_t min, int64_t max);
double parse_double(const std::string& s, const std::string& flag, double min, double max);
std::string parse_choice(const std::string& s, const std::string& flag, const std::vector<std::string>& choices);
// "a,b,,c" -> {a, b, c}.
std::vector<std::string> split_list(const std::string& s);
std::string join(const std::vector<std::string>& items, const std::string& sep = ", ");

}  // namespace app
