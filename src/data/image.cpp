#include "data/image.h"

#include <algorithm>
#include <cstring>

#include "core/common.h"

namespace ddpm::data {

Image convert_channels(Image image, int channels) {
  DDPM_CHECK(channels == 1 || channels == 3, "channels ", channels);
  DDPM_CHECK(image.channels == 1 || image.channels == 3, "channels ", image.channels);
  if (image.channels == channels) return image;
  const int64_t n = int64_t{image.height} * image.width;
  Image out;
  out.height = image.height;
  out.width = image.width;
  out.channels = channels;
  out.pixels.resize(static_cast<size_t>(n * channels));
  const uint8_t* src = image.pixels.data();
  uint8_t* dst = out.pixels.data();
  if (channels == 3) {
    for (int64_t i = 0; i < n; ++i) dst[3 * i] = dst[3 * i + 1] = dst[3 * i + 2] = src[i];
  } else {
    // L = (299 R + 587 G + 114 B) / 1000, rounded, in 16.16 fixed point as PIL does.
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t l = 19595u * src[3 * i] + 38470u * src[3 * i + 1] + 7471u * src[3 * i + 2] + 0x8000u;
      dst[i] = static_cast<uint8_t>(l >> 16);
    }
  }
  return out;
}

void flip_horizontal(uint8_t* pixels, int height, int width, int channels) {
  const int64_t row_bytes = int64_t{width} * channels;
  for (int y = 0; y < height; ++y) {
    uint8_t* row = pixels + y * row_bytes;
    if (channels == 1) {
      std::reverse(row, row + width);
      continue;
    }
    for (int left = 0, right = width - 1; left < right; ++left, --right) {
      uint8_t* a = row + int64_t{left} * channels;
      uint8_t* b = row + int64_t{right} * channels;
      for (int c = 0; c < channels; ++c) std::swap(a[c], b[c]);
    }
  }
}

}  // namespace ddpm::data
