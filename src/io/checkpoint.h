// Training checkpoints (HDF5, docs/formats.md): groups params, ema, optimizer/m,
// optimizer/v with one float32 dataset per parameter (PyTorch names and shapes, each
// with its crc32), and root attributes for the step, the full resolved config, the
// model config, the world size, the seed, the data cursor and the dataset checksum.
// Written with the commit protocol; a run directory keeps the newest K of them and a
// `latest` pointer that is replaced atomically after the file is in place.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/params.h"

namespace ddpm {

struct TrainState {
  int64_t step = 0;             // optimizer updates applied
  int64_t iteration = 0;        // global batches drawn (> step when steps were skipped)
  int64_t data_epoch = 0;       // the loader cursor after the last batch used
  int64_t data_position = 0;
  int64_t world_size = 1;
  int64_t nonfinite_skips = 0;  // steps skipped for a NaN/Inf loss or gradient, in all
  int64_t dataset_checksum = 0;
  std::string config_yaml;      // the full resolved config of the run
};

// The four buffers a checkpoint holds, each in the parameter layout. write_checkpoint and
// read_checkpoint take host memory; CheckpointWriter::start takes a backend's memory
// (ModelBuffers::checkpoint_view) and downloads it into host memory of its own. A null
// buffer is skipped where a reader allows it (ema on ranks other than 0).
struct TrainBuffers {
  float* params = nullptr;
  float* ema = nullptr;
  float* m = nullptr;
  float* v = nullptr;
};

std::string checkpoint_name(int64_t step);  // ckpt-NNNNNNNN.h5

// Writes DIR/checkpoints/ckpt-<step>.h5 (tmp, fsync, rename, fsync dir), then moves
// `latest` to it and deletes all but the newest `keep`. On failure (disk full) the
// previous checkpoints and `latest` are untouched and an InputError says why.
// before_commit, when given, runs between the temporary file and the commit (tests).
std::string write_checkpoint(const std::string& checkpoint_dir, const ModelConfig& model,
                             const ParamLayout& layout, const TrainBuffers& buffers, const TrainState& state,
                             int keep, const std::function<void()>& before_commit = {});

// Reads a checkpoint into the buffers (null ones are skipped), verifying every
// tensor's checksum; InputError naming the file on any problem.
TrainState read_checkpoint(const std::string& path, const ParamLayout& layout, const TrainBuffers& buffers);

// Checkpoints in the directory, newest first (`latest` first when it names one).
std::vector<std::string> list_checkpoints(const std::string& checkpoint_dir);

// Deletes what a writer killed mid-write leaves behind (ckpt-*.h5.tmp, latest.tmp);
// returns how many. Only while no writer runs (rank 0, before training starts).
int remove_unfinished_checkpoints(const std::string& checkpoint_dir);

}  // namespace ddpm
