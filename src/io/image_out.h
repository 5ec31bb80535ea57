// Writing samples: PNG files (libpng), grids of images, and .npz archives holding
// uint8 NHWC images as `arr_0` (the layout FID tools such as the TF/PyTorch FID
// scripts read). All files are written through the commit protocol.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ddpm {

// How [-1, 1] floats become bytes. kTruncate is what the published samplers and the
// reference's image logging do, so it is what FID is computed on: guided-diffusion's
// image_sample.py ((x + 1) * 127.5).clamp(0, 255).to(uint8), hojonathanho/diffusion's
// np.clip((x + 1) * 127.5, 0, 255).astype('uint8'). kRound rounds to nearest instead
// (half a level brighter on average; ddpm_sample --quantize round).
enum class Quantize { kTruncate, kRound };
// "truncate" or "round"; an InputError naming `what` otherwise.
Quantize parse_quantize(const std::string& name, const std::string& what);

// (x + 1) * 127.5 in float, clipped to [0, 255], then truncated or rounded.
std::vector<uint8_t> to_uint8(const float* x, int64_t n, Quantize quantize);

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
