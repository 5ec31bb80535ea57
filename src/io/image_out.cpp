#include "io/image_out.h"

#include <png.h>

#include <cmath>
#include <cstdio>
#include <cstring>

#include "core/common.h"
#include "core/fs.h"
#include "io/npz.h"

namespace ddpm {

Quantize parse_quantize(const std::string& name, const std::string& what) {
  if (name == "truncate") return Quantize::kTruncate;
  if (name == "round") return Quantize::kRound;
  input_error(what, ": unknown quantization '", name, "' (truncate or round)");
}

std::vector<uint8_t> to_uint8(const float* x, int64_t n, Quantize quantize) {
  std::vector<uint8_t> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    float v = (x[i] + 1.0f) * 127.5f;
    if (quantize == Quantize::kRound) v = std::nearbyint(v);
    // NaN fails both tests and becomes 0.
    out[i] = static_cast<uint8_t>(v > 0.0f ? (v < 255.0f ? v : 255.0f) : 0.0f);
  }
  return out;
}

std::vector<uint8_t> make_grid(const uint8_t* images, int n, int H, int W, int C, int cols, int pad, int* grid_h,
                               int* grid_w, uint8_t background) {
  cols = std::max(1, std::min(cols, n));
  const int rows = (n + cols - 1) / cols;
  *grid_h = rows * H + (rows + 1) * pad;
  *grid_w = cols * W + (cols + 1) * pad;
  std::vector<uint8_t> grid(static_cast<size_t>(*grid_h) * *grid_w * C, background);
  for (int i = 0; i < n; ++i) {
    const int y0 = pad + (i / cols) * (H + pad), x0 = pad + (i % cols) * (W + pad);
    for (int y = 0; y < H; ++y) {
      std::memcpy(&grid[(static_cast<size_t>(y0 + y) * *grid_w + x0) * C],
                  images + (static_cast<size_t>(i) * H + y) * W * C, static_cast<size_t>(W) * C);
    }
  }
  return grid;
}

namespace {

// A file written through `write(FILE*)` (false on failure) and committed.
template <typename WriteFn>
void write_committed(const std::string& path, WriteFn&& write) {
  fs::write_atomically(path, [&](const std::string& tmp) {
    FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) input_error(path, ": cannot create the file (directory missing or not writable?)");
    bool ok = write(f);
    ok = (std::fflush(f) == 0) && ok;
    ok = (std::fclose(f) == 0) && ok;
    if (!ok) input_error(path, ": write failed (disk full?)");
  });
}

}  // namespace

void write_png(const std::string& path, const uint8_t* image, int H, int W, int C) {
  DDPM_CHECK(C == 1 || C == 3, "PNG images have 1 or 3 channels");
  write_committed(path, [&](FILE* f) {
    png_image img;
    std::memset(&img, 0, sizeof(img));
    img.version = PNG_IMAGE_VERSION;
    img.width = static_cast<png_uint_32>(W);
    img.height = static_cast<png_uint_32>(H);
    img.format = C == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    const int ok = png_image_write_to_stdio(&img, f, 0, image, W * C, nullptr);
    png_image_free(&img);
    return ok != 0;
  });
}

void write_grid_png(const std::string& path, const uint8_t* images, int n, int H, int W, int C) {
  int gh = 0, gw = 0;
  const int cols = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(n))));
  const std::vector<uint8_t> grid = make_grid(images, n, H, W, C, cols, 2, &gh, &gw);
  write_png(path, grid.data(), gh, gw, C);
}

void write_npz(const std::string& path, const uint8_t* images, int n, int H, int W, int C) {
  write_npz(path, {{"arr_0", NpyView{NpyDType::kUInt8, {n, H, W, C}, images}}},
                  Overwrite::kReplace);
}

}  // namespace ddpm
