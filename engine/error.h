// Errors are values a user can read: every failure in the library throws EngineError with what went wrong,
// where, and (when we know) what to do. Only apps catch and exit.
#pragma once
#include <fmt/core.h>

#include <iterator>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace engine {

class EngineError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
// One piece of cat(), written by fmt. Floating-point values as %g (six significant digits), as the messages
// have always shown them: fmt's own shortest round-trip form would print a computed 0.1 + 0.2 as
// 0.30000000000000004.
template <class A>
void append(std::string& out, const A& a) {
  static_assert(!std::is_same_v<A, bool>, "cat: write a bool as words, e.g. (b ? \"on\" : \"off\")");
  if constexpr (std::is_floating_point_v<A>)
    fmt::format_to(std::back_inserter(out), "{:g}", a);
  else
    fmt::format_to(std::back_inserter(out), "{}", a);
}
}  // namespace detail

// Builds a message from pieces fmt can format: cat("conv2d: expected ", 4, "-d input"). For aligned columns or
// a chosen precision, use fmt::format directly.
template <class... A>
std::string cat(const A&... a) {
  std::string out;
  (detail::append(out, a), ...);
  return out;
}

[[noreturn]] inline void fail(const std::string& msg) { throw EngineError(msg); }

}  // namespace engine

// ENGINE_CHECK(cond, pieces...) throws EngineError("pieces...") when cond is false.
#define ENGINE_CHECK(cond, ...)                              \
  do {                                                       \
    if (!(cond)) ::engine::fail(::engine::cat(__VA_ARGS__)); \
  } while (0)
