// Where a training run starts. Rank 0 reads the newest checkpoint of the run directory
// that reads back intact and matches the config, or makes the initial weights; every
// rank then takes that start point (one read of the checkpoint, not one per rank), on
// any number of ranks: the counters, the weights and Adam's moments; the EMA stays on
// rank 0.
#pragma once

#include <cstdint>
#include <string>

#include "core/params.h"
#include "io/checkpoint.h"

namespace ddpm {

class TrainLog;
class World;
struct Config;
struct ModelBuffers;

struct StartPoint {
  bool resumed = false;           // from a checkpoint (else from the initial weights)
  std::string path;               // that checkpoint (rank 0 only)
  TrainState state;
  int64_t saved_world_size = 0;   // the ranks that wrote it
  HostFloats params, ema, m, v;   // rank 0, until distributed
};

// Rank 0. Corrupt checkpoints are skipped with a warning in `log`; one of another
// model or diffusion config, or checkpoints that are all corrupt, are bad input (never
// silently start over). No checkpoint: a fresh start.
StartPoint read_start_point(const std::string& checkpoint_dir, const Config& config,
                            const std::string& config_source, const ParamLayout& layout, uint32_t dataset_checksum,
                            TrainLog* log);

// Collective: every rank's `start` takes rank 0's counters, and `buffers` (allocated,
// fresh moments zero) its values; the host copies are freed.
void distribute_start_point(const World& world, StartPoint& start, ModelBuffers& buffers);

}  // namespace ddpm
