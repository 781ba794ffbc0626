#include "apps/common/png.h"

#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "engine/error.h"

namespace app {

using engine::cat;

namespace {
void put32(std::vector<uint8_t>& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
}
uint32_t get32(const std::vector<uint8_t>& b, size_t at) {
  return (uint32_t(b[at]) << 24) | (uint32_t(b[at + 1]) << 16) | (uint32_t(b[at + 2]) << 8) | b[at + 3];
}
void chunk(std::vector<uint8_t>& out, const char* type, const std::vector<uint8_t>& data) {
  put32(out, static_cast<uint32_t>(data.size()));
  size_t start = out.size();
  out.insert(out.end(), type, type + 4);
  out.insert(out.end(), data.begin(), data.end());
  uLong crc = crc32(0L, out.data() + start, static_cast<uInt>(out.size() - start));
  put32(out, static_cast<uint32_t>(crc));
}
const uint8_t kSignature[8] = {137, 80, 78, 71, 13, 10, 26, 10};
}  // namespace

std::vector<uint8_t> encode_png(int width, int height, const std::vector<uint8_t>& rgb) {
  ENGINE_CHECK(width > 0 && height > 0 && rgb.size() == static_cast<size_t>(width) * height * 3,
               "encode_png: ", rgb.size(), " bytes for ", width, "x", height, " RGB");
  std::vector<uint8_t> raw;
  raw.reserve((static_cast<size_t>(width) * 3 + 1) * height);
  for (int y = 0; y < height; ++y) {
    raw.push_back(0);  // filter: none
    raw.insert(raw.end(), rgb.begin() + static_cast<size_t>(y) * width * 3,
               rgb.begin() + static_cast<size_t>(y + 1) * width * 3);
  }
  uLongf size = compressBound(static_cast<uLong>(raw.size()));
  std::vector<uint8_t> z(size);
  ENGINE_CHECK(compress2(z.data(), &size, raw.data(), static_cast<uLong>(raw.size()), 9) == Z_OK,
               "encode_png: zlib compression failed");
  z.resize(size);

  std::vector<uint8_t> out(kSignature, kSignature + 8);
  std::vector<uint8_t> ihdr;
  put32(ihdr, static_cast<uint32_t>(width));
  put32(ihdr, static_cast<uint32_t>(height));
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});  // 8-bit, RGB, deflate, adaptive filtering, no interlace
  chunk(out, "IHDR", ihdr);
  chunk(out, "IDAT", z);
  chunk(out, "IEND", {});
  return out;
}

void write_file_atomic(const std::string& path, const std::string& data) {
  std::string tmp = cat(path, ".tmp-", ::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  ENGINE_CHECK(f, "cannot write ", tmp, ": ", std::strerror(errno));
  bool ok = std::fwrite(data.data(), 1, data.size(), f) == data.size();
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    engine::fail(cat("cannot write ", path, ": ", std::strerror(err)));
  }
}

void write_png(const std::string& path, int width, int height, const std::vector<uint8_t>& rgb) {
  std::vector<uint8_t> png = encode_png(width, height, rgb);
  write_file_atomic(path, std::string(png.begin(), png.end()));
}

std::vector<uint8_t> decode_png(const std::vector<uint8_t>& png, int* width, int* height) {
  ENGINE_CHECK(png.size() >= 8 && std::memcmp(png.data(), kSignature, 8) == 0, "decode_png: not a PNG signature");
  size_t at = 8;
  std::vector<uint8_t> z;
  int w = 0, h = 0;
  bool end = false;
  while (!end) {
    ENGINE_CHECK(at + 12 <= png.size(), "decode_png: truncated chunk at byte ", at);
    uint32_t len = get32(png, at);
    ENGINE_CHECK(at + 12 + len <= png.size(), "decode_png: chunk at byte ", at, " runs past the end");
    std::string type(reinterpret_cast<const char*>(png.data() + at + 4), 4);
    uLong crc = crc32(0L, png.data() + at + 4, len + 4);
    ENGINE_CHECK(crc == get32(png, at + 8 + len), "decode_png: CRC mismatch in chunk ", type);
    const uint8_t* d = png.data() + at + 8;
    if (type == "IHDR") {
      ENGINE_CHECK(len == 13, "decode_png: bad IHDR");
      w = static_cast<int>(get32(png, at + 8));
      h = static_cast<int>(get32(png, at + 12));
      ENGINE_CHECK(d[8] == 8 && d[9] == 2 && d[12] == 0, "decode_png: only 8-bit RGB non-interlaced is supported");
    } else if (type == "IDAT") {
      z.insert(z.end(), d, d + len);
    } else if (type == "IEND") {
      end = true;
    }
    at += 12 + len;
  }
  ENGINE_CHECK(w > 0 && h > 0, "decode_png: no IHDR");
  const size_t stride = static_cast<size_t>(w) * 3;
  std::vector<uint8_t> raw((stride + 1) * h);
  uLongf raw_size = static_cast<uLongf>(raw.size());
  ENGINE_CHECK(
      uncompress(raw.data(), &raw_size, z.data(), static_cast<uLong>(z.size())) == Z_OK && raw_size == raw.size(),
      "decode_png: bad image data");
  std::vector<uint8_t> rgb(stride * h);
  for (int y = 0; y < h; ++y) {
    const uint8_t filter = raw[y * (stride + 1)];
    const uint8_t* src = raw.data() + y * (stride + 1) + 1;
    uint8_t* row = rgb.data() + y * stride;
    const uint8_t* up = y ? row - stride : nullptr;
    for (size_t i = 0; i < stride; ++i) {
      int a = i >= 3 ? row[i - 3] : 0, b = up ? up[i] : 0, c = (up && i >= 3) ? up[i - 3] : 0;
      int pred = 0;
      switch (filter) {
        case 0:
          pred = 0;
          break;
        case 1:
          pred = a;
          break;
        case 2:
          pred = b;
          break;
        case 3:
          pred = (a + b) / 2;
          break;
        case 4: {
          int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
          pred = (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c);
          break;
        }
        default:
          engine::fail(cat("decode_png: unknown filter ", int(filter), " in row ", y));
      }
      row[i] = static_cast<uint8_t>(src[i] + pred);
    }
  }
  *width = w;
  *height = h;
  return rgb;
}

}  // namespace app
