// Decoding of the encoded images the importers meet: PNG (libpng), JPEG (libjpeg) and
// WebP (libwebp), recognised by their first bytes, never by a file name.
#pragma once

#include <cstddef>
#include <cstdint>

#include "data/image.h"

namespace ddpm::data {

enum class Codec { kUnknown, kPng, kJpeg, kWebp };

Codec sniff_codec(const uint8_t* data, size_t size);
const char* codec_name(Codec codec);

// The largest image decode_image accepts, checked from the header before allocating.
constexpr int64_t kMaxDecodePixels = int64_t{1} << 26;  // e.g. 8192 x 8192

// Decodes to 8-bit grey (1 channel) or RGB (3): palettes are expanded, alpha dropped,
// 16-bit samples scaled to 8. Throws InputError with the reason (the caller adds the
// name). A JPEG that libjpeg only warns about (corrupt or truncated data) is an error too.
Image decode_image(const uint8_t* data, size_t size);

// The channel count decode_image would give (1 or 3), read from the header alone; 0 if the
// header is not within [data, data + size) or the format is unknown.
int probe_channels(const uint8_t* data, size_t size);

}  // namespace ddpm::data
