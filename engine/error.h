// Errors are values a user can read: every failure in the library throws EngineError with what went wrong,
// where, and (when we know) what to do. Only apps catch and exit. The type lives with the kernels
// (kernels/check.h), the lowest layer, so that kernels throw the same error without including the engine.
#pragma once
#include "kernels/check.h"

namespace engine {

using EngineError = kernels::Error;
using kernels::cat;  // cat("conv2d: expected ", 4, "-d input")
using kernels::fail;

}  // namespace engine

// ENGINE_CHECK(cond, pieces...) throws EngineError("pieces...") when cond is false.
#define ENGINE_CHECK(cond, ...)                              \
  do {                                                       \
    if (!(cond)) ::engine::fail(::engine::cat(__VA_ARGS__)); \
  } while (0)
