// The on-disk dataset format (docs/data.md): a directory with HDF5 shards
// `shard-XXXXX-of-YYYYY.h5` and a YAML `manifest` written last.
//
// Shard: dataset `images` uint8 [N, H, W, C], chunked one image per chunk, no filters;
// `checksums` uint32 [N] (CRC-32 of each image's H*W*C bytes); optional `labels`
// int32 [N]; root attributes format, version, height, width, channels, count,
// shard_index, num_shards, source and checksum (CRC-32 of the checksums table
// followed by the labels, both little-endian), which the manifest repeats.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ddpm::data {

constexpr const char* kShardFormat = "ddpm-shard";
constexpr int64_t kShardVersion = 1;
constexpr const char* kManifestFormat = "ddpm-dataset";
constexpr int64_t kManifestVersion = 1;
constexpr const char* kManifestName = "manifest";

// Limits on what a manifest or shard may claim; checked before anything is allocated.
constexpr int64_t kMaxSide = 8192;                      // pixels per image side
constexpr int64_t kMaxShards = 99999;                   // five-digit shard names
constexpr int64_t kMaxImagesPerShard = int64_t{1} << 24;
constexpr int64_t kMaxImages = (int64_t{1} << 32) - 1;  // Philox counters index images with 32 bits

struct ImageShape {
  int height = 0, width = 0, channels = 0;
  int64_t bytes() const { return int64_t{height} * width * channels; }
  bool operator==(const ImageShape& o) const {
    return height == o.height && width == o.width && channels == o.channels;
  }
  bool operator!=(const ImageShape& o) const { return !(*this == o); }
};

// "32x32x3"
std::string shape_string(const ImageShape& shape);
// InputError "<where>: ..." unless 1 <= height, width <= kMaxSide and channels is 1 or 3.
void check_shape(int64_t height, int64_t width, int64_t channels, const std::string& where);

// shard-00003-of-00016.h5
std::string shard_file_name(int64_t index, int64_t num_shards);
// True for names shard_file_name() makes (with an optional ".tmp" suffix) and "manifest"
// (or "manifest.tmp"): the only entries a dataset directory may hold.
bool is_dataset_entry_name(const std::string& name);

// CRC-32 of the checksums table followed by the labels (both little-endian): the shard
// checksum stored in the shard's `checksum` attribute and in the manifest.
uint32_t shard_checksum(const std::vector<uint32_t>& image_checksums, const std::vector<int32_t>& labels);

}  // namespace ddpm::data
