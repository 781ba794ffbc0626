// A 5x7 bitmap font for printable ASCII (32..126), the classic LCD character set. Each glyph is 7 rows, top to
// bottom; bit 4 of a row is the leftmost pixel. Drawn in a 6x8 cell (one column and one row of spacing).
#pragma once
#include <cstdint>

namespace app::font5x7 {

inline constexpr int kWidth = 5, kHeight = 7, kCellW = 6, kCellH = 8;

// Rows of character c (printable ASCII), or of '?' for anything else.
const uint8_t* glyph(char c);

}  // namespace app::font5x7
