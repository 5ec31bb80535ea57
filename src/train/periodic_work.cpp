#include "train/periodic_work.h"

#include <cstdio>
#include <vector>

#include "core/clock.h"
#include "core/common.h"
#include "core/config.h"
#include "core/fs.h"
#include "core/sampler.h"
#include "core/unet.h"
#include "core/weights_io.h"
#include "dist/watchdog.h"
#include "dist/world.h"
#include "train/checkpoint_writer.h"
#include "train/image_out.h"
#include "train/model_buffers.h"
#include "train/train_log.h"

namespace ddpm {

PeriodicWork::PeriodicWork(World& world, const Config& config, Ops& ops, UNet& net, const Diffusion& diffusion,
                           Watchdog& watchdog, ModelBuffers& buffers, TrainLog* log, const std::string& run_dir,
                           int local_batch)
    : world_(world),
      cfg_(config),
      ops_(ops),
      net_(net),
      diffusion_(diffusion),
      watchdog_(watchdog),
      buffers_(buffers),
      log_(log),
      checkpoint_dir_(fs::join(run_dir, "checkpoints")),
      samples_dir_(fs::join(run_dir, "samples")),
      local_batch_(local_batch) {
  if (world.is_root()) {
    writer_ = std::make_unique<CheckpointWriter>(checkpoint_dir_, config.model, net.layout(),
                                                 config.train.keep_checkpoints);
  }
}

PeriodicWork::~PeriodicWork() = default;

void PeriodicWork::say(const std::string& text) {
  if (log_) log_->line(text);
}

void PeriodicWork::check_replicas(const TrainState& state) {
  if (world_.size() == 1) return;
  watchdog_.enter(phase::kConsistency, state.iteration);
  const int64_t P = buffers_.params.size();
  const float* host = buffers_.params.get();
  if (!ops_.host_memory()) {
    if (!replica_scratch_) replica_scratch_ = alloc_host_floats(P);
    ops_.download(replica_scratch_.get(), buffers_.params.get(), P);
    host = replica_scratch_.get();
  }
  const std::vector<int64_t> hashes = world_.allgather(tensor_crc32(host, P));
  std::string differing;
  for (size_t r = 1; r < hashes.size(); ++r) {
    if (hashes[r] != hashes[0]) differing += cat(differing.empty() ? "" : ", ", r);
  }
  if (differing.empty()) return;
  world_.abort_agreed(kExitInternal,
                      cat("ddpm_train: error: the parameters differ across ranks after step ", state.step,
                          " (iteration ", state.iteration, "): rank(s) ", differing,
                          " differ from rank 0; replicas must stay identical (a non-deterministic kernel, a "
                          "hardware fault or a bug): resume from the last checkpoint"));
}

void PeriodicWork::sample_grid(const TrainState& state) {
  watchdog_.enter(phase::kSampleGrid, state.iteration);
  const int W = world_.size(), count = cfg_.train.sample_count;
  const int per_rank = (count + W - 1) / W;
  const ModelConfig& mc = cfg_.model;
  const int64_t per_example = static_cast<int64_t>(mc.resolution) * mc.resolution * mc.in_channels;
  const int64_t P = buffers_.params.size();
  if (!world_.is_root() && !sample_weights_) sample_weights_ = ParamBuffer(ops_, P);
  const ParamBuffer& weights = world_.is_root() ? buffers_.ema : sample_weights_;
  HostFloats host = alloc_host_floats(P);
  if (world_.is_root()) ops_.download(host.get(), buffers_.ema.get(), P);
  world_.broadcast(host.get(), P);
  if (!world_.is_root()) sample_weights_.load(host.get());
  SamplerOptions so;
  so.kind = cfg_.train.sample_sampler;
  so.steps = cfg_.train.sample_steps;
  so.seed = cfg_.train.seed;
  Sampler sampler(net_, ops_, diffusion_, so);
  std::vector<float> mine(static_cast<size_t>(per_rank) * per_example), all;
  if (world_.is_root()) all.resize(static_cast<size_t>(per_rank) * W * per_example);
  const double t0 = now_seconds();
  // Each sampler step is progress: the watchdog times steps, not the whole grid.
  sampler.sample(weights, int64_t{world_.rank()} * per_rank, per_rank, mine.data(), nullptr,
                 [&](int, int) { watchdog_.beat(); });
  world_.gather(all.data(), mine.data(), static_cast<int64_t>(per_rank) * per_example);
  net_.prepare(ops_, local_batch_);
  if (!world_.is_root()) return;
  const std::vector<uint8_t> bytes = to_uint8(all.data(), static_cast<int64_t>(count) * per_example);
  char name[64];
  std::snprintf(name, sizeof(name), "step-%08lld.png", static_cast<long long>(state.step));
  write_grid_png(fs::join(samples_dir_, name), bytes.data(), count, mc.resolution, mc.resolution, mc.in_channels);
  say(cat("samples ", fs::join(samples_dir_, name), " (", count, " images, ", sampler.timesteps().size(), " steps, ",
          static_cast<int>(now_seconds() - t0), " s)"));
}

void PeriodicWork::start_checkpoint(const TrainState& state) {
  if (!writer_) return;
  watchdog_.enter(phase::kCheckpoint, state.iteration);
  writer_->start(ops_, buffers_.checkpoint_view(), state);
}

bool PeriodicWork::commit_checkpoint(const TrainState& state, bool rewrite, int64_t resumed_step) {
  if (!writer_) return true;
  const auto on_disk = [&] { return state.step == resumed_step || writer_->last_committed_step() == state.step; };
  if (rewrite || !on_disk()) writer_->start(ops_, buffers_.checkpoint_view(), state);
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
