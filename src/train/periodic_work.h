// What a training run does between steps, every so many of them: the replica check
// (every rank's parameters hash the same), the grids of EMA samples, the FID of the EMA
// (train.fid_every), and the hand-off of checkpoints to rank 0's background writer,
// whose outcomes it reports.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/buffer.h"
#include "core/params.h"
#include "core/unet.h"
#include "io/checkpoint.h"
#include "train/run_context.h"

namespace ddpm {

class CheckpointWriter;
class TrainLog;
class TrainingFid;

class PeriodicWork {
 public:
  // The references must outlive this; log is rank 0's (null on the others).
  // checkpoint_delay: the tests' slow_checkpoint fault (make_checkpoint_delay), or empty.
  PeriodicWork(const RunContext& run, TrainLog* log, const std::string& run_dir,
               std::function<void(int64_t)> checkpoint_delay = {});
  ~PeriodicWork();  // finishes the checkpoint write in flight
  PeriodicWork(const PeriodicWork&) = delete;
  PeriodicWork& operator=(const PeriodicWork&) = delete;

  // Collective. The replicas must stay bitwise identical (same data, same reduced
  // gradient, same update); any difference ends the job before a checkpoint could
  // capture one rank's drift.
  void check_replicas(const TrainState& state);
  // Collective: a grid of EMA samples, drawn by all ranks (rank 0 lends its EMA).
  void sample_grid(const TrainState& state);
  // Collective: the FID of the EMA (all ranks sample), to the log and metrics.jsonl.
  void measure_fid(const TrainState& state);
  // Rank 0 (no-op elsewhere): hands the buffers to the background writer.
  void start_checkpoint(const TrainState& state);
  // Rank 0 (true elsewhere): writes a checkpoint of `state` and waits for every write;
  // returns whether state.step is on disk. Unless `rewrite`, nothing new is written when
  // the writer already committed that step or the run resumed at it (`resumed_step`);
  // `rewrite` records the latest counters even so (the skipped batches of a NaN abort).
  bool commit_checkpoint(const TrainState& state, bool rewrite, int64_t resumed_step = -1);
  // Rank 0 (no-op elsewhere): logs the background writes that finished.
  void report_checkpoints();

  const std::string& checkpoint_dir() const { return checkpoint_dir_; }

 private:
  void say(const std::string& text);
  // Collective: the EMA on every rank (rank 0's own, lent to the others).
  const ParamBuffer& lend_ema();
  UNet& sample_net();

  const RunContext run_;
  TrainLog* log_;
  const std::string checkpoint_dir_, samples_dir_;
  std::unique_ptr<CheckpointWriter> writer_;  // rank 0
  ParamBuffer sample_weights_;                // ranks other than 0: the EMA, lent for the grids
  // The grids' own forward-only U-Net, built on the first grid: the training net keeps
  // its primitives and plan for the training batch instead of rebuilding them twice
  // per grid.
  std::unique_ptr<UNet> sample_net_;
  HostFloats replica_scratch_;                // replica check on a device backend
  std::unique_ptr<TrainingFid> fid_;          // with train.fid_every
};

}  // namespace ddpm
