// bf16 (bfloat16): a storage type, float's sign and 8-bit exponent with 7 stored mantissa bits, so its range is
// float's and a bf16 value is the upper half of a float's bits. It has no arithmetic and no conversion operators
// on purpose: kernel code cannot compute in bf16 by accident (a `static_cast<T>(x)` or `a + b` on it does not
// compile), and every value enters and leaves through the functions below, which kernels reach through
// kernels/dtype.h's to_compute / to_storage / convert_value.
//
// float -> bf16 rounds to nearest, ties to even (RNE), as IEEE 754's default rounding, cuDNN, cuBLAS and PyTorch
// do: it is unbiased (truncation always moves towards zero, so sums of rounded values drift), and a model's
// bf16 values then match other engines' bit for bit. The rounding is done in the bits, which makes subnormals,
// the carry into the next binade and overflow to Inf (past the largest finite bf16 plus half an ulp) come out of
// the same addition. A float NaN stays NaN with its sign and the top of its payload, made quiet: dropping the
// low 16 bits alone could turn a NaN whose payload lies only there into Inf. A double NaN becomes the quiet NaN
// with its sign (a double's payload has no bf16 counterpart, and GPUs do not keep it through a conversion).
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/host_device.h"

namespace kernels {

struct bf16 {
  uint16_t bits;  // sign, 8 exponent bits, 7 mantissa bits: the upper half of the float with the same value
};
static_assert(sizeof(bf16) == 2 && std::is_trivially_copyable_v<bf16> && std::is_trivial_v<bf16>,
              "bf16 is stored as its 16 bits, copied with memcpy and by cudaMemcpy");

KERNELS_HOST_DEVICE inline uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

KERNELS_HOST_DEVICE inline float float_from_bits(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

KERNELS_HOST_DEVICE inline bool sign_bit(double d) {
#if defined(__CUDA_ARCH__)
  return __double_as_longlong(d) < 0;
#else
  uint64_t u;
  std::memcpy(&u, &d, sizeof u);
  return (u >> 63) != 0;
#endif
}

// Exact: every bf16 value is a float.
KERNELS_HOST_DEVICE inline float bf16_to_float(bf16 b) { return float_from_bits(static_cast<uint32_t>(b.bits) << 16); }

// Round to nearest, ties to even. Adding 0x7FFF plus the lowest kept bit carries into the kept half exactly when
// the dropped half is above the midpoint, or at it with an odd kept half. A carry out of the mantissa steps the
// exponent, which is the right next value (a carry out of the largest finite is Inf); it can never reach the
// sign bit, since the largest non-NaN magnitude is Inf's 0x7F800000.
KERNELS_HOST_DEVICE inline bf16 bf16_from_float(float f) {
  uint32_t u = float_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return bf16{static_cast<uint16_t>((u >> 16) | 0x0040u)};  // NaN, quiet
  u += 0x7FFFu + ((u >> 16) & 1u);
  return bf16{static_cast<uint16_t>(u >> 16)};
}

// Correctly rounded (to nearest, ties to even) from double. Rounding to float first and then to bf16 would round
// twice: a double just above a bf16 midpoint may round to the midpoint itself as a float, and then the tie goes to
// even, perhaps the wrong way. So the float is first rounded to odd (towards zero, then the lowest bit set if
// anything was dropped): with more than two bits to spare beyond bf16's, a value rounded to odd rounds to the same
// bf16 as the exact one. The float's wider exponent range (subnormals down to 2^-149, Inf from 2^128) keeps both
// ends of bf16's range inside it.
KERNELS_HOST_DEVICE inline bf16 bf16_from_double(double d) {
  if (d != d) return bf16{static_cast<uint16_t>(sign_bit(d) ? 0xFFC0u : 0x7FC0u)};
  float f = static_cast<float>(d);
  if (static_cast<double>(f) != d) {  // inexact
    uint32_t u = float_bits(f);
    const double af = f < 0 ? -static_cast<double>(f) : static_cast<double>(f), ad = d < 0 ? -d : d;
    if (af > ad) u -= 1;  // rounded away from zero (Inf included): one float ulp back towards zero
    f = float_from_bits(u | 1u);
  }
  return bf16_from_float(f);
}

}  // namespace kernels
