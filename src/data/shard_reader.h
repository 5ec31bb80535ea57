// Reading a dataset written by ddpm_prepare. Every shard is checked against the manifest
// (format, version, dims, dtype, chunking, counts, table checksums, file size) before any
// pixel is read, and every image against its own checksum when it is read. Problems are
// InputErrors that name the shard (and the image).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/h5.h"
#include "data/manifest.h"

namespace ddpm::data {

class ShardReader {
 public:
  struct Expected {
    std::string path;
    int64_t shard_index = 0, num_shards = 0;
    ShardEntry entry;
    ImageShape shape;
    bool labels = false;
  };
  explicit ShardReader(const Expected& expected);

  // Image i of this shard ([H, W, C] bytes) into out, checked against its checksum;
  // dataset_index only names it in messages.
  void read_image(int64_t i, int64_t dataset_index, uint8_t* out);
  const std::vector<int32_t>& labels() const { return labels_; }
  const std::vector<uint32_t>& checksums() const { return checksums_; }

 private:
  Expected expected_;
  h5::File file_;
  h5::Handle images_, file_space_, mem_space_;
  std::vector<uint32_t> checksums_;
  std::vector<int32_t> labels_;
  void validate_attributes();
  std::string what_changed() const;
  void open_images();
  void read_tables();
};

class DatasetReader {
 public:
  // Reads DIR/manifest and validates every shard. At most max_open_shards stay open
  // (least recently used are closed; a reopened shard is validated again).
  explicit DatasetReader(const std::string& dir, int max_open_shards = 64);
  DatasetReader(const DatasetReader&) = delete;
  DatasetReader& operator=(const DatasetReader&) = delete;

  const std::string& dir() const { return dir_; }
  const Manifest& manifest() const { return manifest_; }
  int64_t count() const { return manifest_.count; }
  ImageShape shape() const { return manifest_.shape; }
  // Image `index` of the dataset ([H, W, C] bytes). Not thread-safe: one reader per thread.
  void read(int64_t index, uint8_t* out);
  // The label of image `index`, -1 for a dataset without labels.
  int32_t label(int64_t index) const;

 private:
  std::string dir_;
  Manifest manifest_;
  int max_open_;
  std::vector<int64_t> shard_start_;  // shard k holds images [shard_start_[k], shard_start_[k + 1])
  std::vector<int32_t> labels_;       // [count] or empty
  std::vector<std::unique_ptr<ShardReader>> open_;
  std::vector<uint64_t> last_use_;
  uint64_t clock_ = 0;
  int open_count_ = 0;
  ShardReader::Expected expected(int64_t shard) const;
  ShardReader& shard(int64_t k);
};

}  // namespace ddpm::data
