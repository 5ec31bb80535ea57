// Rank 0's checkpoints, written on a thread of their own so that training does not wait
// on the disk. start() copies the backend buffers into a host snapshot — the only part
// training waits for — and the thread writes the snapshot with the commit protocol
// (checkpoint.h: write aside, fsync, rename, fsync the directory, then move `latest`).
// One write is in flight at a time: start() first waits for the previous one, so memory
// stays at one snapshot and checkpoints land in step order. A failed write (disk full)
// leaves the previous checkpoints and `latest` as they were; its outcome is reported
// through take_finished() and never thrown.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "core/config.h"
#include "core/params.h"
#include "io/checkpoint.h"

namespace ddpm {

class Ops;

class CheckpointWriter {
 public:
  struct Outcome {
    int64_t step = -1;
    bool ok = false;
    std::string path;   // the committed file (ok)
    std::string error;  // why it failed (!ok)
    double seconds = 0; // the write alone, snapshot excluded
  };

  // before_commit(iteration), when given, runs between a checkpoint's temporary file and
  // its commit (the tests' slow_checkpoint fault).
  CheckpointWriter(std::string checkpoint_dir, ModelConfig model, const ParamLayout& layout, int keep,
                   std::function<void(int64_t)> before_commit = {});
  ~CheckpointWriter();  // finishes the write in flight
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  // Waits for the write in flight, snapshots `buffers` (memory of `ops`; all four set)
  // and `state`, and starts writing them. Returns the seconds spent waiting and copying.
  double start(Ops& ops, const TrainBuffers& buffers, const TrainState& state);
  // Waits until no write is in flight.
  void wait();
  // Outcomes of the writes finished since the last call, oldest first; never waits.
  std::vector<Outcome> take_finished();
  // The step of the newest checkpoint this writer committed (-1: none yet).
  int64_t last_committed_step() const;

 private:
  void run();

  const std::string dir_;
  const ModelConfig model_;
  const ParamLayout& layout_;
  const int keep_;
  const std::function<void(int64_t)> before_commit_;
  HostFloats params_, ema_, m_, v_;  // the snapshot
  TrainState state_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool pending_ = false;  // a snapshot waits for or is in the write
  bool shutdown_ = false;
  std::vector<Outcome> finished_;
  int64_t last_committed_ = -1;
  std::thread thread_;
};

}  // namespace ddpm
