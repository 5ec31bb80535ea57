// Inputs the data tests make for themselves: images encoded with libpng, libjpeg and
// libwebp, CIFAR-10 records, MNIST IDX files, LSUN-style LMDBs, synthetic datasets, and
// ways to damage files.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "data/image.h"
#include "data/manifest.h"

namespace ddpm::testing {

// A fresh directory under /tmp, removed with everything in it at the end of the scope.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Deterministic content that differs between images and between left and right (so a
// flip shows): pixel (y, x, c) is a hash of (seed, y, x, c). `smooth` gives gradients
// instead, which survive JPEG well.
data::Image pattern_image(int height, int width, int channels, uint32_t seed, bool smooth = false);

struct PngOptions {
  int bit_depth = 8;       // 8 or 16
  bool alpha = false;      // add an alpha channel (which the decoder must drop)
  bool palette = false;    // store as a palette image (needs <= 256 colours, 3 channels)
  bool interlace = false;  // Adam7
};
std::vector<uint8_t> encode_png(const data::Image& image, const PngOptions& options = {});
std::vector<uint8_t> encode_jpeg(const data::Image& image, int quality = 95);
std::vector<uint8_t> encode_webp_lossless(const data::Image& image);  // 3 channels

void write_file(const std::string& path, const std::vector<uint8_t>& bytes);
std::vector<uint8_t> read_file(const std::string& path);
void make_dirs(const std::string& path);

// One CIFAR-10 binary batch file: records of a label byte and the R, G, B planes.
void write_cifar_batch(const std::string& path, const std::vector<data::Image>& images,
                       const std::vector<uint8_t>& labels);
// MNIST IDX files (gzipped when the name ends with .gz).
void write_idx_images(const std::string& path, const std::vector<data::Image>& images);
void write_idx_labels(const std::string& path, const std::vector<uint8_t>& labels);
// An LMDB in dir (data.mdb) holding the given key/value pairs.
void write_lmdb(const std::string& dir, const std::vector<std::pair<std::string, std::vector<uint8_t>>>& entries);

// A dataset whose image i is pattern_image(shape, seed = i) (label i % 10), written with
// DatasetWriter in `num_shards` shards.
data::Manifest write_synthetic_dataset(const std::string& dir, int64_t count, const data::ImageShape& shape,
                                       int64_t num_shards, bool labels = true);

// Damage: xor one byte; cut the file to `size` bytes.
void flip_byte(const std::string& path, int64_t offset, uint8_t mask = 0x01);
void truncate_file(const std::string& path, int64_t size);
// The file offset of image i's chunk in a shard (HDF5 chunk info).
int64_t image_offset_in_shard(const std::string& shard_path, int64_t i);

// Runs a shell command; returns its exit status (or -1 if it did not exit normally).
int run_command(const std::string& command);

// The message of the InputError that f throws ("" if it throws none).
template <typename F>
std::string input_error_of(F&& f);

}  // namespace ddpm::testing

#include "core/common.h"

template <typename F>
std::string ddpm::testing::input_error_of(F&& f) {
  try {
    f();
  } catch (const ddpm::InputError& e) {
    return e.what();
  }
  return "";
}
