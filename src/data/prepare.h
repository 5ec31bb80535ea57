// The import pipeline behind every ddpm_prepare subcommand: items from an ImageSource
// are decoded, converted and resized on worker threads, then written in source order
// (so the dataset does not depend on the thread count) by a DatasetWriter.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "data/manifest.h"
#include "data/source.h"

namespace ddpm::data {

struct PrepareOptions {
  std::string out_dir;
  int64_t num_shards = 0;   // give exactly one of num_shards and shard_size
  int64_t shard_size = 0;
  int resolution = 0;       // > 0: centre crop and resample to R x R; 0: keep the source size
  bool force_rgb = false;   // grey sources become 3 channels
  bool strict = false;      // an image that cannot be decoded is fatal instead of skipped
  int threads = 0;          // decode threads; 0: one per core
  int64_t limit = 0;        // > 0: import only the first `limit` items
  bool progress = true;     // progress bar on stderr
  // Receives "NAME: reason" for each skipped item; default: a warning line on stderr.
  std::function<void(const std::string&)> on_skip;
};

struct PrepareReport {
  Manifest manifest;
  int64_t skipped = 0;
  double seconds = 0;
};

// One item as the dataset stores it: decoded (when encoded), converted to `channels`,
// centre-cropped and resized to `resolution` (0: as it is). InputError on a bad image.
Image prepare_image(SourceItem& item, int channels, int resolution);

PrepareReport prepare_dataset(ImageSource& source, const PrepareOptions& options);

}  // namespace ddpm::data
