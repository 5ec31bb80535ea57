// Writing samples: PNG files (libpng), grids of images, and .npz archives holding
// uint8 NHWC images as `arr_0` (the layout FID tools such as the TF/PyTorch FID
// scripts read). All files are written through the commit protocol.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ddpm {

// [-1, 1] floats to bytes as the reference code does: round((x + 1) * 127.5), clipped.
std::vector<uint8_t> to_uint8(const float* x, int64_t n);

// Tiles n images [n, H, W, C] into rows of `cols`, with `pad` pixels of `background`
// between and around them. Returns the grid [gh, gw, C] and its size.
std::vector<uint8_t> make_grid(const uint8_t* images, int n, int H, int W, int C, int cols, int pad, int* grid_h,
                               int* grid_w, uint8_t background = 255);

void write_png(const std::string& path, const uint8_t* image, int H, int W, int C);
// The n images as one PNG grid of ceil(sqrt(n)) columns, 2 pixels apart.
void write_grid_png(const std::string& path, const uint8_t* images, int n, int H, int W, int C);
// samples.npz: the images as arr_0, uint8 [n, H, W, C] (eval/npz.h writes it).
void write_npz(const std::string& path, const uint8_t* images, int n, int H, int W, int C);

}  // namespace ddpm
