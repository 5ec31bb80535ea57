// Writing a dataset: shards into a staging directory next to the output, the manifest
// last, then the staging directory swapped into place in one step, so that a rerun into
// an existing directory never leaves a mix of old and new shards, and a failed run leaves
// the old dataset as it was.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/h5.h"
#include "data/manifest.h"

namespace ddpm::data {

// One shard file: images are appended one chunk at a time.
class ShardFileWriter {
 public:
  // capacity: the most images this shard will receive (it may end with fewer).
  ShardFileWriter(const std::string& path, const ImageShape& shape, int64_t capacity, bool labels,
                  int64_t shard_index, int64_t num_shards, const std::string& source);
  ShardFileWriter(const ShardFileWriter&) = delete;
  ShardFileWriter& operator=(const ShardFileWriter&) = delete;

  // pixels: [H, W, C]; checksum: crc32_of(pixels); label ignored without labels.
  void add(const uint8_t* pixels, uint32_t checksum, int32_t label);
  // Trims the images to the count written, writes the tables and attributes, closes and
  // fsyncs the file. Returns its manifest entry.
  ShardEntry finish();

 private:
  std::string path_;
  ImageShape shape_;
  int64_t capacity_, shard_index_, num_shards_;
  bool labels_;
  std::string source_;
  h5::File file_;
  h5::Handle images_;
  std::vector<uint32_t> checksums_;
  std::vector<int32_t> label_values_;
};

// The whole dataset.
class DatasetWriter {
 public:
  // Items are numbered 0..planned_items-1 by the source; item i goes to the shard that
  // covers it: num_shards equal ranges, or ranges of shard_size (give exactly one).
  // Checks out_dir is absent, empty or a dataset directory, and creates OUT.partial.
  DatasetWriter(const std::string& out_dir, const std::string& source, int64_t planned_items, int64_t num_shards,
                int64_t shard_size, bool labels);
  ~DatasetWriter();  // without commit(): removes the staging directory
  DatasetWriter(const DatasetWriter&) = delete;
  DatasetWriter& operator=(const DatasetWriter&) = delete;

  int64_t num_shards() const { return static_cast<int64_t>(shard_begin_.size()) - 1; }
  // The image shape; must be set before the first add().
  void set_shape(const ImageShape& shape) { shape_ = shape; }
  // Items must come in increasing order; skipped items simply leave their shard smaller.
  void add(int64_t item, const uint8_t* pixels, uint32_t checksum, int32_t label);
  // Finishes every shard (empty ones too), writes the manifest, swaps the staging
  // directory into out_dir and removes the previous dataset. Returns the manifest.
  Manifest commit();

 private:
  std::string out_dir_, staging_, source_;
  bool labels_;
  ImageShape shape_;
  std::vector<int64_t> shard_begin_;  // shard k covers items [shard_begin_[k], shard_begin_[k + 1])
  int64_t current_ = -1;              // shard being written
  std::unique_ptr<ShardFileWriter> writer_;
  std::vector<ShardEntry> entries_;
  bool committed_ = false;
  void open_shard(int64_t k);
  void close_shard();
};

}  // namespace ddpm::data
