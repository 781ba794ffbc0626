// The kernels' own error type and check: kernels depend on nothing above them, yet their errors must read like
// the engine's. engine::EngineError is this type (engine/error.h aliases it), so a kernel's message reaches the
// user unchanged and `catch (const engine::EngineError&)` catches it.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace kernels {

class Error : public std::runtime_error {
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

[[noreturn]] inline void fail(const std::string& msg) { throw Error(msg); }

}  // namespace kernels

// KERNELS_CHECK(cond, pieces...) throws kernels::Error("pieces...") when cond is false.
#define KERNELS_CHECK(cond, ...)                               \
  do {                                                         \
    if (!(cond)) ::kernels::fail(::kernels::cat(__VA_ARGS__)); \
  } while (0)
