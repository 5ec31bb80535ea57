// The dataset manifest: a small YAML file `DIR/manifest`, written last by ddpm_prepare,
// that lists the shards with their image counts, byte sizes and checksums.
//
//   format: ddpm-dataset
//   version: 1
//   source: "cifar10 train from cifar-10-binary.tar.gz"
//   height: 32
//   width: 32
//   channels: 3
//   count: 50000
//   labels: true
//   shards:
//     - {file: shard-00000-of-00004.h5, count: 12500, bytes: 38652512, checksum: "8c1f03a2"}
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/shard_format.h"

namespace ddpm::data {

struct ShardEntry {
  std::string file;   // shard_file_name(index, num_shards)
  int64_t count = 0;  // images
  int64_t bytes = 0;  // file size: a truncated or replaced shard is caught before opening
  uint32_t checksum = 0;
};

struct Manifest {
  std::string source;
  ImageShape shape;
  int64_t count = 0;
  bool has_labels = false;
  std::vector<ShardEntry> shards;

  std::string to_yaml() const;
  // Parses and validates (format, version, limits, shard names, counts add up); an
  // InputError names `where` and the problem.
  static Manifest parse(const std::string& text, const std::string& where);
  // Reads DIR/manifest (at most 64 MiB).
  static Manifest read_dir(const std::string& dir);
  // CRC-32 over the shard checksums: identifies the dataset's content (for checkpoints).
  uint32_t fingerprint() const;
};

}  // namespace ddpm::data
