// Errors are values a user can read: every failure in the library throws EngineError with what went wrong,
// where, and (when we know) what to do. Only apps catch and exit.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace engine {

class EngineError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
inline void append(std::ostringstream&) {}
template <class A, class... R>
void append(std::ostringstream& os, const A& a, const R&... r) {
  os << a;
  append(os, r...);
}
}  // namespace detail

// Builds a message from any streamable pieces: cat("conv2d: expected ", 4, "-d input").
template <class... A>
std::string cat(const A&... a) {
  std::ostringstream os;
  detail::append(os, a...);
  return os.str();
}

[[noreturn]] inline void fail(const std::string& msg) { throw EngineError(msg); }

}  // namespace engine

// ENGINE_CHECK(cond, pieces...) throws EngineError("pieces...") when cond is false.
#define ENGINE_CHECK(cond, ...)                              \
  do {                                                       \
    if (!(cond)) ::engine::fail(::engine::cat(__VA_ARGS__)); \
  } while (0)
