// PNG encoding (8-bit RGB, no interlace) with zlib, and a decoder for the same subset so tests can read back
// what was written.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace app {

std::vector<uint8_t> encode_png(int width, int height, const std::vector<uint8_t>& rgb);
// Writes atomically (temp file + rename).
void write_png(const std::string& path, int width, int height, const std::vector<uint8_t>& rgb);
// Decodes 8-bit RGB non-interlaced PNGs (all five row filters), checking signature and CRCs.
std::vector<uint8_t> decode_png(const std::vector<uint8_t>& png, int* width, int* height);

// Writes `data` to `path` through a temporary file in the same folder and a rename.
void write_file_atomic(const std::string& path, const std::string& data);

}  // namespace app
