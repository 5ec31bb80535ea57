#include "train/image_out.h"

#include <png.h>
#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <cstdio>
#include <cstring>

#include "core/common.h"
#include "core/fs.h"

namespace ddpm {

std::vector<uint8_t> to_uint8(const float* x, int64_t n) {
  std::vector<uint8_t> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const float v = std::nearbyint((x[i] + 1.0f) * 127.5f);
    out[i] = static_cast<uint8_t>(v < 0.0f ? 0.0f : (v > 255.0f ? 255.0f : v));
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

// Writes `bytes` to path.tmp with `write`, then commits it (fsync, rename, fsync dir).
template <typename WriteFn>
void write_committed(const std::string& path, WriteFn&& write) {
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) input_error(path, ": cannot create the file (directory missing or not writable?)");
  bool ok = write(f);
  ok = (std::fflush(f) == 0) && ok;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    unlink(tmp.c_str());
    input_error(path, ": write failed (disk full?)");
  }
  fs::commit(tmp, path);
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

namespace {
void put16(std::vector<uint8_t>& b, uint32_t v) {
  b.push_back(v & 0xFF);
  b.push_back((v >> 8) & 0xFF);
}
void put32(std::vector<uint8_t>& b, uint32_t v) {
  put16(b, v & 0xFFFF);
  put16(b, v >> 16);
}
}  // namespace

// An uncompressed ("stored") zip archive with one member, arr_0.npy, in NPY format 1.0.
void write_grid_png(const std::string& path, const uint8_t* images, int n, int H, int W, int C) {
  int gh = 0, gw = 0;
  const int cols = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(n))));
  const std::vector<uint8_t> grid = make_grid(images, n, H, W, C, cols, 2, &gh, &gw);
  write_png(path, grid.data(), gh, gw, C);
}

void write_npz(const std::string& path, const uint8_t* images, int n, int H, int W, int C) {
  std::string header = cat("{'descr': '|u1', 'fortran_order': False, 'shape': (", n, ", ", H, ", ", W, ", ", C,
                           "), }");
  // Magic (6) + version (2) + header length (2) + header, padded with spaces to a
  // multiple of 64 and ended by a newline.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::vector<uint8_t> npy = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
  put16(npy, static_cast<uint32_t>(header.size()));
  npy.insert(npy.end(), header.begin(), header.end());
  const size_t data_size = static_cast<size_t>(n) * H * W * C;
  const uint64_t total = npy.size() + data_size;
  if (total >= 0xFFFFFFFFull) input_error(path, ": more than 4 GiB of samples; write several archives");
  uLong crc = crc32(0L, npy.data(), static_cast<uInt>(npy.size()));
  crc = crc32(crc, images, static_cast<uInt>(data_size));
  const std::string name = "arr_0.npy";

  auto file_header = [&](bool central) {
    std::vector<uint8_t> h;
    put32(h, central ? 0x02014b50 : 0x04034b50);
    if (central) put16(h, 20);  // version made by
    put16(h, 20);               // version needed
    put16(h, 0);                // flags
    put16(h, 0);                // stored
    put16(h, 0);                // time
    put16(h, 0x21);             // date (1980-01-01)
    put32(h, static_cast<uint32_t>(crc));
    put32(h, static_cast<uint32_t>(total));
    put32(h, static_cast<uint32_t>(total));
    put16(h, static_cast<uint32_t>(name.size()));
    put16(h, 0);  // extra
    if (central) {
      put16(h, 0);  // comment
      put16(h, 0);  // disk
      put16(h, 0);  // internal attributes
      put32(h, 0);  // external attributes
      put32(h, 0);  // offset of the local header
    }
    h.insert(h.end(), name.begin(), name.end());
    return h;
  };
  const std::vector<uint8_t> local = file_header(false), central = file_header(true);
  std::vector<uint8_t> end;
  put32(end, 0x06054b50);
  put16(end, 0);
  put16(end, 0);
  put16(end, 1);
  put16(end, 1);
  put32(end, static_cast<uint32_t>(central.size()));
  put32(end, static_cast<uint32_t>(local.size() + total));
  put16(end, 0);
  write_committed(path, [&](FILE* f) {
    return std::fwrite(local.data(), 1, local.size(), f) == local.size() &&
           std::fwrite(npy.data(), 1, npy.size(), f) == npy.size() &&
           std::fwrite(images, 1, data_size, f) == data_size &&
           std::fwrite(central.data(), 1, central.size(), f) == central.size() &&
           std::fwrite(end.data(), 1, end.size(), f) == end.size();
  });
}

}  // namespace ddpm
