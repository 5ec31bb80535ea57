// An 8-bit image in memory and the pixel operations the importers and the loader share.
#pragma once

#include <cstdint>
#include <vector>

#include "data/shard_format.h"

namespace ddpm::data {

struct Image {
  int height = 0, width = 0, channels = 0;
  std::vector<uint8_t> pixels;  // [height, width, channels], row-major (HWC)

  ImageShape shape() const { return {height, width, channels}; }
};

// Converts to 1 or 3 channels: grey is replicated into R, G and B (lossless); RGB becomes
// grey with the ITU-R 601 luma weights (PIL's convert("L")).
Image convert_channels(Image image, int channels);

// Mirrors each row in place: pixels [height, width, channels].
void flip_horizontal(uint8_t* pixels, int height, int width, int channels);

}  // namespace ddpm::data
