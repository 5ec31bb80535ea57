#include "train/periodic_work.h"

#include <cstdio>
#include <vector>

#include "core/clock.h"
#include "core/common.h"
#include "core/config.h"
#include "core/fs.h"
#include "core/sampler.h"
#include "core/unet.h"
#include "io/weights_io.h"
#include "dist/watchdog.h"
#include "dist/world.h"
#include "train/checkpoint_writer.h"
#include "io/image_out.h"
#include "train/model_buffers.h"
#include "train/train_log.h"
#include "train/training_fid.h"

namespace ddpm {

PeriodicWork::PeriodicWork(const RunContext& run, TrainLog* log, const std::string& run_dir,
                           std::function<void(int64_t)> checkpoint_delay)
    : run_(run),
      log_(log),
      checkpoint_dir_(fs::join(run_dir, "checkpoints")),
      samples_dir_(fs::join(run_dir, "samples")) {
  if (run.world.is_root()) {
    writer_ = std::make_unique<CheckpointWriter>(checkpoint_dir_, run.config.model, run.net.layout(),
                                                 run.config.train.keep_checkpoints, std::move(checkpoint_delay));
  }
  if (run.config.train.fid_every > 0) fid_ = std::make_unique<TrainingFid>(run, run_dir);
}

PeriodicWork::~PeriodicWork() = default;

void PeriodicWork::say(const std::string& text) {
  if (log_) log_->line(text);
}

void PeriodicWork::check_replicas(const TrainState& state) {
  if (run_.world.size() == 1) return;
  run_.watchdog.enter(phase::kConsistency, state.iteration);
  const int64_t P = run_.buffers.params.size();
  const float* host = run_.buffers.params.get();
  if (!run_.ops.host_memory()) {
    if (!replica_scratch_) replica_scratch_ = alloc_host_floats(P);
    run_.ops.download(replica_scratch_.get(), run_.buffers.params.get(), P);
    host = replica_scratch_.get();
  }
  const std::vector<int64_t> hashes = run_.world.allgather(tensor_crc32(host, P));
  std::string differing;
  for (size_t r = 1; r < hashes.size(); ++r) {
    if (hashes[r] != hashes[0]) differing += cat(differing.empty() ? "" : ", ", r);
  }
  if (differing.empty()) return;
  run_.world.abort_agreed(kExitInternal,
                      cat("ddpm_train: error: the parameters differ across ranks after step ", state.step,
                          " (iteration ", state.iteration, "): rank(s) ", differing,
                          " differ from rank 0; replicas must stay identical (a non-deterministic kernel, a "
                          "hardware fault or a bug): resume from the last checkpoint"));
}

const ParamBuffer& PeriodicWork::lend_ema() {
  World& world = run_.world;
  if (world.is_root()) {
    if (world.size() > 1) {
      HostFloats host = alloc_host_floats(run_.buffers.ema.size());
      run_.ops.download(host.get(), run_.buffers.ema.get(), run_.buffers.ema.size());
      world.broadcast(host.get(), run_.buffers.ema.size());
    }
    return run_.buffers.ema;
  }
  const int64_t P = run_.buffers.params.size();
  if (!sample_weights_) sample_weights_ = ParamBuffer(run_.ops, P);
  HostFloats host = alloc_host_floats(P);
  world.broadcast(host.get(), P);
  sample_weights_.load(host.get());
  return sample_weights_;
}

// The grids' and FID's own forward-only U-Net (see sample_net_).
UNet& PeriodicWork::sample_net() {
  if (!sample_net_) sample_net_ = std::make_unique<UNet>(run_.config.model);
  return *sample_net_;
}

void PeriodicWork::sample_grid(const TrainState& state) {
  World& world = run_.world;
  const bool root = world.is_root();
  run_.watchdog.enter(phase::kSampleGrid, state.iteration);
  const int W = world.size(), count = run_.config.train.sample_count;
  const int per_rank = (count + W - 1) / W;
  const ModelConfig& mc = run_.config.model;
  const int64_t per_example = mc.values_per_image();
  const ParamBuffer& weights = lend_ema();
  SamplerOptions so;
  so.kind = run_.config.train.sample_sampler;
  so.steps = run_.config.train.sample_steps;
  so.seed = run_.config.train.seed;
  Sampler sampler(sample_net(), run_.ops, run_.diffusion, so);
  std::vector<float> mine(static_cast<size_t>(per_rank) * per_example), all;
  if (root) all.resize(static_cast<size_t>(per_rank) * W * per_example);
  const double t0 = now_seconds();
  // Each sampler step is progress: the watchdog times steps, not the whole grid.
  sampler.sample(weights, int64_t{world.rank()} * per_rank, per_rank, mine.data(), nullptr,
                 [&](int, int) { run_.watchdog.beat(); });
  world.gather(all.data(), mine.data(), static_cast<int64_t>(per_rank) * per_example);
  if (!root) return;
  const std::vector<uint8_t> bytes = to_uint8(all.data(), static_cast<int64_t>(count) * per_example, Quantize::kTruncate);
  char name[64];
  std::snprintf(name, sizeof(name), "step-%08lld.png", static_cast<long long>(state.step));
  write_grid_png(fs::join(samples_dir_, name), bytes.data(), count, mc.resolution, mc.resolution, mc.in_channels);
  say(cat("samples ", fs::join(samples_dir_, name), " (", count, " images, ", sampler.timesteps().size(), " steps, ",
          static_cast<int>(now_seconds() - t0), " s)"));
}

void PeriodicWork::measure_fid(const TrainState& state) {
  if (!fid_) return;
  run_.watchdog.enter(phase::kFid, state.iteration);
  const double t0 = now_seconds();
  const double fid = fid_->measure(lend_ema(), sample_net(), [&] { run_.watchdog.beat(); });
  if (!log_) return;
  const TrainConfig& tc = run_.config.train;
  const double seconds = now_seconds() - t0;
  FidRecord record;
  record.fid = fid, record.samples = tc.fid_num, record.ddim_steps = tc.fid_steps, record.seconds = seconds;
  record.resize = fid_->evaluator().provenance().resize;
  record.published = fid_->evaluator().weights_source().published();
  log_->record_fid(state.step, record);
}

void PeriodicWork::start_checkpoint(const TrainState& state) {
  if (!writer_) return;
  run_.watchdog.enter(phase::kCheckpoint, state.iteration);
  writer_->start(run_.ops, run_.buffers.checkpoint_view(), state);
}

bool PeriodicWork::commit_checkpoint(const TrainState& state, bool rewrite, int64_t resumed_step) {
  if (!writer_) return true;
  const auto on_disk = [&] { return state.step == resumed_step || writer_->last_committed_step() == state.step; };
  if (rewrite || !on_disk()) writer_->start(run_.ops, run_.buffers.checkpoint_view(), state);
  writer_->wait();
  report_checkpoints();
  return on_disk();
}

void PeriodicWork::report_checkpoints() {
  if (!writer_) return;
  for (const CheckpointWriter::Outcome& o : writer_->take_finished()) {
    if (o.ok) {
      say(cat("checkpoint ", o.path, " (", static_cast<int>(o.seconds * 1000), " ms)"));
    } else {
      say(cat("warning: checkpoint at step ", o.step, " failed: ", o.error, "; the previous checkpoint is intact"));
    }
  }
}

}  // namespace ddpm
