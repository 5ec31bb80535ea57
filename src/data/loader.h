// The rank-aware loader: each rank reads only its slice of each global batch of the
// example stream (data/stream.h), with random flips, decoded ahead by a prefetch thread.
// A Cursor (epoch, position) saved in a checkpoint resumes exactly the same stream, on
// any world size that divides the global batch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"

namespace ddpm::data {

// Where the next global batch starts: stream position epoch * D + position.
struct Cursor {
  int64_t epoch = 0;
  int64_t position = 0;
  bool operator==(const Cursor& o) const { return epoch == o.epoch && position == o.position; }
  bool operator!=(const Cursor& o) const { return !(*this == o); }
};

struct LoaderOptions {
  std::string path;            // dataset directory (with its manifest)
  int global_batch = 0;        // B, the same on every rank
  int rank = 0;
  int world_size = 1;          // must divide global_batch
  uint64_t seed = 0;
  bool random_flip = true;
  int prefetch_batches = 4;    // queue depth; 0 reads on the calling thread
  Cursor start;                // from a checkpoint, or {0, 0}
  int max_open_shards = 64;
};

// A training run's options for rank `rank` of `world_size`: the config's dataset, global
// batch, seed, flips and prefetch, from `start`.
LoaderOptions loader_options(const Config& config, int rank, int world_size, Cursor start = {});

struct DatasetInfo {
  std::string path, source;
  int64_t count = 0;
  int height = 0, width = 0, channels = 0;
  int64_t num_shards = 0;
  bool has_labels = false;
  uint32_t checksum = 0;  // Manifest::fingerprint(): record it in checkpoints
  int64_t image_bytes() const { return int64_t{height} * width * channels; }
};

// This rank's slice of one global batch: example k is at stream position
// (the cursor before this batch) + first_global_example + k.
struct Batch {
  int n = 0;                         // B / W examples of this rank
  std::vector<uint8_t> pixels;       // [n, H, W, C] (info()'s shape), flips applied
  int64_t first_global_example = 0;  // rank * B / W: index within the global batch
  Cursor next;                       // cursor after this global batch: save it with the step
};

class Loader {
 public:
  // Opens the manifest and validates every shard before reading any pixels; InputError on
  // bad options, a cursor outside the dataset, or a bad dataset.
  explicit Loader(const LoaderOptions& options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // This rank's part of the next global batch, into `batch`: its pixel storage is
  // swapped with a prefetched buffer's, and its old storage goes back to the loader to
  // be filled again, so a caller that keeps one Batch allocates nothing once every
  // buffer has reached full size. Errors met by the prefetch thread (a corrupt image, a
  // vanished shard) are thrown here, as InputError naming the shard and image; after
  // one, every call throws it again.
  void next(Batch& batch);
  // The same into a new Batch (allocates: for callers outside the training step).
  Batch next();
  const DatasetInfo& info() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ddpm::data
