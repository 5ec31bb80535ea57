#include "train/trainer.h"

#include <cmath>
#include <csignal>
#include <thread>

#include "core/backend.h"
#include "core/clock.h"
#include "core/common.h"
#include "core/diffusion.h"
#include "core/fs.h"
#include "core/optim.h"
#include "core/unet.h"
#include "data/loader.h"
#include "dist/allreduce.h"
#include "dist/watchdog.h"
#include "dist/world.h"
#include "io/checkpoint.h"
#include "train/fault_injection.h"
#include "train/interval_stats.h"
#include "train/model_buffers.h"
#include "train/periodic_work.h"
#include "train/run_lock.h"
#include "train/start_point.h"
#include "train/train_log.h"
#include "train/train_step.h"

namespace ddpm {
namespace {

int threads_for(const DeviceConfig& device, const World& world) {
  if (device.threads > 0) return device.threads;
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  return std::max(1, cores / std::max(1, world.local_size()));
}

std::string signal_names(const double* stats) {
  if (stats[kStopUsr1] > 0 && stats[kStopTerm] > 0) return "SIGUSR1 and SIGTERM";
  return stats[kStopUsr1] > 0 ? "SIGUSR1" : "SIGTERM";
}

}  // namespace

// The run's parts, and the loop that drives its units: the start point (resume, rank
// redistribution), the step, and the periodic work (replica check, grids, checkpoints).
// Members are destroyed in reverse order: the checkpoint write in flight finishes first,
// and the backend goes last, after every buffer and primitive it owns.
struct Trainer::Impl {
  World& world;
  Config cfg;
  TrainOptions opt;
  // Rank 0's lock on the run directory; declared first so that it is released last,
  // after the checkpoint writer has finished.
  std::unique_ptr<RunDirLock> run_lock;
  std::unique_ptr<Watchdog> watchdog;
  FaultInjector faults;
  std::unique_ptr<StepHook> fault_hook;
  std::unique_ptr<TrainLog> log;  // rank 0
  std::unique_ptr<Ops> ops;
  std::unique_ptr<UNet> net;
  std::unique_ptr<Diffusion> diffusion;
  std::unique_ptr<Optimizer> optimizer;
  std::unique_ptr<data::Loader> loader;
  ModelBuffers buffers;
  StartPoint start;
  TrainState state;
  std::unique_ptr<TrainStep> step;
  std::unique_ptr<PeriodicWork> periodic;
  int local_batch = 0;
  uint32_t dataset_checksum = 0;
  int64_t checkpointed_step = -1;  // the step of the checkpoint this run resumed from

  Impl(World& w, const Config& c, const TrainOptions& o) : world(w), cfg(c), opt(o) {}

  bool root() const { return world.is_root(); }
  void say(const std::string& text) {
    if (log) log->line(text);
  }

  void setup_local();
  void distribute_start_point();
  [[noreturn]] void abort_after_skips(int64_t skips, bool loss_was_finite);
  int finish(int status, const std::string& stop_reason);
  int loop();
};

// Everything a rank can check on its own: the run directory, the model, the backend and
// the dataset. Collective calls only start after the ranks agree that this worked.
void Trainer::Impl::setup_local() {
  const int W = world.size();
  faults = FaultInjector::from_environment();
  fault_hook = make_fault_hook(faults, world.rank());
  if (cfg.train.batch_size % W != 0) {
    input_error(opt.config_source, ": train.batch_size ", cfg.train.batch_size, " is not divisible by the ", W,
                " ranks");
  }
  if (cfg.data.path.empty()) input_error(opt.config_source, ": data.path is not set");
  local_batch = cfg.train.batch_size / W;
  if (root()) {
    fs::make_dirs(opt.run_dir);
    run_lock = std::make_unique<RunDirLock>(opt.run_dir);  // before anything is written there
    fs::make_dirs(fs::join(opt.run_dir, "checkpoints"));
    fs::make_dirs(fs::join(opt.run_dir, "samples"));
    log = std::make_unique<TrainLog>(opt.run_dir, opt.progress_bar);
  }
  diffusion = std::make_unique<Diffusion>(cfg.diffusion);
  net = std::make_unique<UNet>(cfg.model);
  optimizer = std::make_unique<Optimizer>(cfg.train);
  ops = make_backend(cfg.device, world.local_rank(), threads_for(cfg.device, world));
  if (!gradient_allreduce_available(world, *ops)) {
    input_error(opt.config_source, ": device.kind ", cfg.device.kind, " on ", W,
                " ranks needs NCCL for the gradient all-reduce, and this build has none (docs/gpu.md)");
  }
  // Probe the dataset now (the real loader starts at the checkpoint's cursor).
  data::LoaderOptions lo = data::loader_options(cfg, world.rank(), W);
  lo.prefetch_batches = 0;
  const data::DatasetInfo info = data::Loader(lo).info();
  const ModelConfig& mc = cfg.model;
  if (info.height != mc.resolution || info.width != mc.resolution || info.channels != mc.in_channels) {
    input_error(cfg.data.path, ": images are ", info.height, "x", info.width, "x", info.channels,
                " but the model expects ", mc.resolution, "x", mc.resolution, "x", mc.in_channels);
  }
  dataset_checksum = info.checksum;
  if (mc.out_ch != mc.in_channels) input_error(opt.config_source, ": model.out_ch must equal model.in_channels");
}

// Every rank takes rank 0's start point, then builds the units that run from it.
void Trainer::Impl::distribute_start_point() {
  buffers = ModelBuffers(*ops, net->layout().size(), root());
  ddpm::distribute_start_point(world, start, buffers);
  state = start.state;
  checkpointed_step = start.resumed ? state.step : -1;
  optimizer->set_step_count(state.step);
  state.world_size = world.size();
  state.config_yaml = cfg.to_yaml();
  state.dataset_checksum = dataset_checksum;

  loader = std::make_unique<data::Loader>(
      data::loader_options(cfg, world.rank(), world.size(), data::Cursor{state.data_epoch, state.data_position}));
  const RunContext run{world, cfg, *ops, *net, *diffusion, *watchdog, buffers, local_batch};
  step = std::make_unique<TrainStep>(run, *optimizer, *loader, fault_hook.get());
  periodic = std::make_unique<PeriodicWork>(run, log.get(), opt.run_dir, make_checkpoint_delay(faults, world.rank()));
}

void Trainer::Impl::abort_after_skips(int64_t skips, bool loss_was_finite) {
  // The weights are those of the last good step; the checkpoint records the skipped
  // batches, so a resume (say with a lower train.lr) starts after them.
  watchdog->enter(phase::kFinish, state.iteration);
  periodic->commit_checkpoint(state, /*rewrite=*/true);
  world.abort_agreed(kExitInternal, cat("ddpm_train: error: ", skips, " steps in a row had a NaN/Inf ",
                                        loss_was_finite ? "gradient" : "loss", " (iteration ", state.iteration,
                                        ", train.max_nonfinite_skips = ", cfg.train.max_nonfinite_skips,
                                        "); lower train.lr or check the data"));
}

// The end of a run, done or stopped: rank 0 commits a checkpoint of the current step
// (unless it has one) and waits for it; only then do the ranks learn the outcome and
// exit together, so no rank leaves — and no launcher tears the job down — before the
// checkpoint is on disk.
int Trainer::Impl::finish(int status, const std::string& stop_reason) {
  periodic->check_replicas(state);
  watchdog->enter(phase::kFinish, state.iteration);
  int64_t committed = periodic->commit_checkpoint(state, /*rewrite=*/false, checkpointed_step);
  world.broadcast(&committed, 1);
  if (!committed) {
    const std::vector<std::string> left =
        root() ? list_checkpoints(periodic->checkpoint_dir()) : std::vector<std::string>{};
    say(cat("ddpm_train: error: the checkpoint at step ", state.step,
            " could not be written (see the warning above); the newest complete one is ",
            left.empty() ? std::string("none") : left.front(), ". Free space or fix the file system, then resume"));
    return kExitInternal;
  }
  if (status == kExitRequeue) {
    say(cat("stopping at step ", state.step, " on ", stop_reason, ": checkpoint committed, exit ", kExitRequeue,
            " (requeue)"));
  }
  return status;
}

int Trainer::Impl::loop() {
  const TrainConfig& tc = cfg.train;
  IntervalStats interval(tc.batch_size, state.step, tc.total_steps);
  const double run_start = now_seconds();
  net->prepare(*ops, local_batch, cfg.train.recompute ? PlanMode::kTrainingRecompute : PlanMode::kTraining);
  if (root()) {
    if (!faults.empty()) {
      say(cat("warning: ", FaultInjector::kVariable, "=", faults.spec(), " is set: injecting faults (tests only)"));
    }
    say(cat(checkpointed_step < 0 ? std::string("training")
                                  : cat("resuming at step ", state.step, " from ", start.path, " (written by ",
                                        start.saved_world_size, " rank(s))"),
            ": ", world.size(), " rank(s) x ", local_batch, " images, ", net->layout().num_parameters(),
            " parameters, backend ", ops->name(), " ", precision_name(ops->precision())));
    const int64_t dropped = log->keep_metrics_through(state.step);
    if (dropped > 0) say(cat("metrics.jsonl: dropped ", dropped, " record(s) after step ", state.step, " (redone now)"));
  }
  while (state.step < tc.total_steps) {
    const StepResult r = step->run(state);
    interval.add(r);
    if (!r.applied) {
      ++state.nonfinite_skips;
      if (interval.consecutive_skips() >= tc.max_nonfinite_skips) {
        abort_after_skips(interval.consecutive_skips(), std::isfinite(r.stats[kLossSum]));
      }
    }
    const bool last = state.step >= tc.total_steps;
    const bool stop = r.stats[kStopUsr1] + r.stats[kStopTerm] > 0;
    const bool boundary = (r.applied && state.step % tc.log_every == 0) || last || stop;
    const double lr = optimizer->learning_rate(std::max<int64_t>(state.step - 1, 0));
    if (root()) log->progress(interval.live(state.step, state.iteration, lr));
    if (boundary) {
      const bool any = !interval.empty();
      const StepReport rep = interval.close(state.step, state.iteration, lr);
      if (root() && any) log->record(rep);
    }
    periodic->report_checkpoints();
    // FID also at the last step (the model a run ends with), but not when a signal asks
    // to stop: the checkpoint comes first.
    if (r.applied && !stop && tc.fid_every > 0 && state.step % tc.fid_every == 0) periodic->measure_fid(state);
    if (last || stop) {
      const int status = finish(last ? kExitOk : kExitRequeue, signal_names(r.stats));
      if (status == kExitOk) say(cat("done: step ", state.step, " in ", format_duration(now_seconds() - run_start)));
      return status;
    }
    if (r.applied && state.step % tc.log_every == 0) periodic->check_replicas(state);
    if (r.applied && tc.sample_every > 0 && state.step % tc.sample_every == 0) periodic->sample_grid(state);
    if (r.applied && state.step % tc.checkpoint_every == 0) periodic->start_checkpoint(state);
  }
  // Resumed at or past train.total_steps: nothing to train; make sure it is checkpointed.
  return finish(kExitOk, "");
}

Trainer::Trainer(World& world, const Config& config, const TrainOptions& options)
    : impl_(std::make_unique<Impl>(world, config, options)) {
  Impl& im = *impl_;
  // Watch from the start: a rank that hangs in setup (a dead file system) must not hang
  // the others in the first collective.
  im.watchdog = std::make_unique<Watchdog>(
      world.rank(), config.train.step_timeout_s,
      [&world](const std::string& message) { world.abort(kExitInternal, message); });
  // Each stage ends with the ranks agreeing on the first error, so bad input found by
  // any rank stops every rank with the same one line.
  auto agreed_stage = [&](auto&& stage) {
    std::string error;
    try {
      stage();
    } catch (const InputError& e) {
      error = e.what();
    }
    error = world.agree_on_error(error);
    if (!error.empty()) throw InputError(error);
  };
  agreed_stage([&] { im.setup_local(); });
  agreed_stage([&] {
    if (!im.root()) return;
    im.start = read_start_point(fs::join(options.run_dir, "checkpoints"), im.cfg, options.config_source,
                                im.net->layout(), im.dataset_checksum, im.log.get());
  });
  agreed_stage([&] { im.distribute_start_point(); });
  // Now that rank 0 made the run directory: each rank's phase where the others can read
  // it, so a watchdog timeout names the rank that stopped.
  if (world.size() > 1) im.watchdog->attach_heartbeat(fs::join(options.run_dir, "heartbeat"), world.size());
  if (im.root()) fs::write_text_atomic(fs::join(options.run_dir, "config.yaml"), config.to_yaml());
}

Trainer::~Trainer() = default;

int Trainer::run() {
  World& world = impl_->world;
  try {
    return impl_->loop();
  } catch (const InputError& e) {
    // A rank's own bad input mid-run (a corrupt shard): it alone knows, so it ends the job.
    world.abort(kExitBadInput, cat("ddpm_train: error: rank ", world.rank(), ": ", e.what()));
  } catch (const std::exception& e) {
    world.abort(kExitInternal, cat("ddpm_train: internal error on rank ", world.rank(), ": ", e.what()));
  }
}

}  // namespace ddpm
