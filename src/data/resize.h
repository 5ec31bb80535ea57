// Centre crop and antialiased resampling for sources whose size is not the dataset's.
#pragma once

#include "data/image.h"

namespace ddpm::data {

// Crops the largest centred square, then resamples it to side x side with a separable
// triangle (tent) filter whose support grows with the reduction factor, so that a
// downscale averages every source pixel it covers (no aliasing; PIL's antialiased
// BILINEAR). Upscaling is plain bilinear. A source already side x side is returned as is;
// one whose short side is `side` is only cropped.
Image center_crop_resize(const Image& image, int side);

}  // namespace ddpm::data
