#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <thread>

#include "core/backend.h"
#include "core/clock.h"
#include "core/common.h"
#include "core/diffusion.h"
#include "core/fs.h"
#include "core/optim.h"
#include "core/rng.h"
#include "core/sampler.h"
#include "core/unet.h"
#include "core/weights_io.h"
#include "data/loader.h"
#include "dist/allreduce.h"
#ifdef DDPM_WITH_NCCL
#include "dist/nccl_allreduce.h"
#endif
#include "dist/signals.h"
#include "dist/watchdog.h"
#include "dist/world.h"
#include "train/checkpoint.h"
#include "train/checkpoint_writer.h"
#include "train/fault_injection.h"
#include "train/image_out.h"
#include "train/train_log.h"

namespace ddpm {
namespace {

// Per-step values every rank contributes to one all-reduce: the loss, the loss by t
// quartile, whether this rank saw a NaN/Inf loss or gradient, and how many ranks got a
// stop signal. Summed, they are the same on every rank, so every rank takes the same
// decision: skip the step, stop, or go on.
enum StepStat {
  kLossSum,
  kQuartileSum,
  kQuartileCount = kQuartileSum + 4,
  kNonFinite = kQuartileCount + 4,
  kStopUsr1,
  kStopTerm,
  kNumStats
};

// The state a run starts from, as rank 0 read it (then broadcast): [resumed, step,
// iteration, data_epoch, data_position, nonfinite_skips, world_size of the checkpoint].
enum StartField { kResumed, kStep, kIteration, kDataEpoch, kDataPosition, kSkips, kSavedWorldSize, kNumStartFields };

// t ~ U{0, ..., T-1} for global example `index` of iteration `iteration`.
int draw_timestep(uint64_t seed, uint32_t iteration, uint32_t index, int T) {
  const u32x4 r = philox4x32_10(philox_counter(Purpose::kTimestep, 0, iteration, index, 0), philox_key(seed));
  return static_cast<int>((static_cast<uint64_t>(r[0]) * static_cast<uint64_t>(T)) >> 32);
}

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

struct Trainer::Impl {
  World& world;
  Config cfg;
  TrainOptions opt;
  std::unique_ptr<Watchdog> watchdog;
  FaultInjector faults;
  std::string checkpoint_dir, samples_dir;
  std::unique_ptr<Ops> ops;
  std::unique_ptr<UNet> net;
  std::unique_ptr<Diffusion> diffusion;
  std::unique_ptr<Optimizer> optimizer;
  std::unique_ptr<data::Loader> loader;
  std::unique_ptr<GradientAllReduce> reducer;
  std::unique_ptr<CheckpointWriter> writer;  // rank 0
  std::unique_ptr<TrainLog> log;             // rank 0
  int64_t P = 0, per_example = 0;
  int local_batch = 0;
  // Backend buffers with the parameter layout, and the step's activations.
  float *params = nullptr, *grads = nullptr, *m = nullptr, *v = nullptr, *ema = nullptr;
  float *x0 = nullptr, *x_t = nullptr, *noise = nullptr, *out = nullptr, *dout = nullptr, *t_dev = nullptr;
  float* sample_weights = nullptr;  // ranks other than 0: EMA copy for the sample grids
  HostFloats replica_scratch;       // consistency check on a device backend
  // Rank 0, from reading the start checkpoint until it is broadcast.
  HostFloats start_params, start_ema, start_m, start_v;
  std::string start_path;
  TrainState state;
  int64_t start_world_size = 0;
  int64_t checkpointed_step = -1;  // the step of the checkpoint this run resumed from
  uint64_t version = 1;
  uint32_t dataset_checksum = 0;

  struct StepResult {
    double stats[kNumStats] = {0};
    double grad_norm = 0;
    bool applied = false;
  };

  Impl(World& w, const Config& c, const TrainOptions& o) : world(w), cfg(c), opt(o) {}
  ~Impl() {
    writer.reset();  // finish the write in flight before the buffers go
    if (!ops) return;
    for (float* p : {params, grads, m, v, ema, x0, x_t, noise, out, dout, t_dev, sample_weights}) {
      if (p) ops->release(p);
    }
  }

  bool root() const { return world.is_root(); }
  void say(const std::string& text) {
    if (log) log->line(text);
  }
  void enter(const WatchPhase& p) { watchdog->enter(p, state.iteration); }

  void setup_local();
  void read_start_point();
  void distribute_start_point();
  StepResult train_step();
  void check_replicas();
  void start_checkpoint();
  void report_checkpoints();
  [[noreturn]] void abort_after_skips(int64_t skips, bool loss_was_finite);
  void sample_grid();
  int finish(int status, const std::string& stop_reason);
  int loop();
};

// Everything a rank can check on its own: the run directory, the model, the backend and
// the dataset. Collective calls only start after the ranks agree that this worked.
void Trainer::Impl::setup_local() {
  const int W = world.size();
  faults = FaultInjector::from_environment();
  if (cfg.train.batch_size % W != 0) {
    input_error(opt.config_source, ": train.batch_size ", cfg.train.batch_size, " is not divisible by the ", W,
                " ranks");
  }
  if (cfg.data.path.empty()) input_error(opt.config_source, ": data.path is not set");
  local_batch = cfg.train.batch_size / W;
  checkpoint_dir = fs::join(opt.run_dir, "checkpoints");
  samples_dir = fs::join(opt.run_dir, "samples");
  if (root()) {
    fs::make_dirs(checkpoint_dir);
    fs::make_dirs(samples_dir);
    log = std::make_unique<TrainLog>(opt.run_dir, opt.progress_bar);
  }
  diffusion = std::make_unique<Diffusion>(cfg.diffusion);
  net = std::make_unique<UNet>(cfg.model);
  optimizer = std::make_unique<Optimizer>(cfg.train);
  ops = make_backend(cfg.device, world.local_rank(), threads_for(cfg.device, world));
#ifndef DDPM_WITH_NCCL
  if (!ops->host_memory() && W > 1) {
    input_error(opt.config_source, ": device.kind ", cfg.device.kind, " on ", W,
                " ranks needs NCCL for the gradient all-reduce, and this build has none (docs/gpu.md)");
  }
#endif
  P = net->layout().size();
  // Probe the dataset now (the real loader starts at the checkpoint's cursor).
  data::LoaderOptions lo;
  lo.path = cfg.data.path;
  lo.global_batch = cfg.train.batch_size;
  lo.rank = world.rank();
  lo.world_size = W;
  lo.prefetch_batches = 0;
  const data::DatasetInfo info = data::Loader(lo).info();
  const ModelConfig& mc = cfg.model;
  if (info.height != mc.resolution || info.width != mc.resolution || info.channels != mc.in_channels) {
    input_error(cfg.data.path, ": images are ", info.height, "x", info.width, "x", info.channels,
                " but the model expects ", mc.resolution, "x", mc.resolution, "x", mc.in_channels);
  }
  dataset_checksum = info.checksum;
  per_example = static_cast<int64_t>(mc.resolution) * mc.resolution * mc.in_channels;
  if (mc.out_ch != mc.in_channels) input_error(opt.config_source, ": model.out_ch must equal model.in_channels");
}

// Rank 0 reads the newest checkpoint that reads back intact — every tensor of params,
// ema and both Adam moments against its checksum — and matches the config; corrupt ones
// are skipped with a warning. No checkpoint: a fresh start from the initial weights.
// Checkpoints that are all corrupt: bad input (never silently start over).
void Trainer::Impl::read_start_point() {
  for (HostFloats* b : {&start_params, &start_ema, &start_m, &start_v}) *b = alloc_host_floats(P);
  const TrainBuffers host{start_params.get(), start_ema.get(), start_m.get(), start_v.get()};
  if (const int removed = remove_unfinished_checkpoints(checkpoint_dir)) {
    say(cat("removed ", removed, " unfinished checkpoint file(s) of an interrupted write"));
  }
  const std::vector<std::string> paths = list_checkpoints(checkpoint_dir);
  // A damaged checkpoint is passed over with a warning.
  auto readable = [&](const std::string& path, const TrainBuffers& into, TrainState* s) {
    try {
      *s = read_checkpoint(path, net->layout(), into);
      return true;
    } catch (const InputError& e) {
      say(cat("warning: skipping checkpoint: ", e.what()));
      return false;
    }
  };
  for (const std::string& path : paths) {
    // The config first (attributes only): a checkpoint of another model is refused, not
    // mistaken for a damaged one and skipped; then every tensor against its checksum.
    TrainState s;
    if (!readable(path, TrainBuffers{}, &s)) continue;
    const Config saved = parse_config(s.config_yaml, path + " (config)");
    for (const char* section : {"model", "diffusion"}) {
      const std::string diff = config_difference(saved, cfg, section);
      if (!diff.empty()) {
        input_error(path, ": this run was trained with another ", section, " config (", diff, " in ",
                    opt.config_source, "); use a new --run-dir");
      }
    }
    if (!readable(path, host, &s)) continue;
    if (s.dataset_checksum != static_cast<int64_t>(dataset_checksum)) {
      say(cat("warning: ", cfg.data.path, " differs from the dataset this run started on (checksum)"));
    }
    if (saved.train.batch_size != cfg.train.batch_size) {
      say(cat("warning: train.batch_size changed from ", saved.train.batch_size, " to ", cfg.train.batch_size,
              ": the run goes on, but with another stream of batches than it would have had"));
    }
    start_path = path;
    state = s;
    return;
  }
  if (!paths.empty()) {
    input_error(checkpoint_dir, ": none of the ", paths.size(),
                " checkpoint(s) reads back intact (see the warnings in train.log); restore one, or move them "
                "away to start afresh");
  }
  init_params(net->layout(), start_params.get(), cfg.train.seed);
  std::copy(start_params.get(), start_params.get() + P, start_ema.get());  // the EMA starts as the weights
  state = TrainState{};
}

// Every rank takes rank 0's start point: the counters, the weights and the Adam moments
// (one read of the checkpoint, not one per rank); the EMA stays on rank 0.
void Trainer::Impl::distribute_start_point() {
  int64_t fields[kNumStartFields] = {!start_path.empty(), state.step, state.iteration, state.data_epoch,
                                     state.data_position, state.nonfinite_skips, state.world_size};
  world.broadcast(fields, kNumStartFields);
  const bool resumed = fields[kResumed] != 0;
  state.step = fields[kStep];
  state.iteration = fields[kIteration];
  state.data_epoch = fields[kDataEpoch];
  state.data_position = fields[kDataPosition];
  state.nonfinite_skips = fields[kSkips];
  start_world_size = fields[kSavedWorldSize];
  checkpointed_step = resumed ? state.step : -1;

  for (float** p : {&params, &grads, &m, &v}) *p = ops->alloc(P);
  if (root()) ema = ops->alloc(P);
  const int64_t act = local_batch * per_example;
  for (float** p : {&x0, &x_t, &noise, &out, &dout}) *p = ops->alloc(act);
  t_dev = ops->alloc(local_batch);
  if (!root()) start_params = alloc_host_floats(P);
  world.broadcast(start_params.get(), P);
  ops->upload(params, start_params.get(), P);
  if (resumed) {  // fresh moments are zero, as allocated
    if (!root()) start_m = alloc_host_floats(P), start_v = alloc_host_floats(P);
    world.broadcast(start_m.get(), P);
    world.broadcast(start_v.get(), P);
    ops->upload(m, start_m.get(), P);
    ops->upload(v, start_v.get(), P);
  }
  if (root()) ops->upload(ema, start_ema.get(), P);
  for (HostFloats* b : {&start_params, &start_ema, &start_m, &start_v}) b->reset();

  optimizer->set_step_count(state.step);
  state.world_size = world.size();
  state.config_yaml = cfg.to_yaml();
  state.dataset_checksum = dataset_checksum;

  data::LoaderOptions lo;
  lo.path = cfg.data.path;
  lo.global_batch = cfg.train.batch_size;
  lo.rank = world.rank();
  lo.world_size = world.size();
  lo.seed = cfg.train.seed;
  lo.random_flip = cfg.data.random_flip;
  lo.prefetch_batches = cfg.data.prefetch_batches;
  lo.start = data::Cursor{state.data_epoch, state.data_position};
  loader = std::make_unique<data::Loader>(lo);
  const int64_t bucket = std::max<int64_t>(1024, static_cast<int64_t>(cfg.train.bucket_mb * (1 << 20) / 4));
#ifdef DDPM_WITH_NCCL
  // Device memory goes through NCCL; host memory through MPI (same buckets either way).
  reducer = ops->host_memory() ? make_mpi_allreduce(world, bucket) : make_nccl_allreduce(world, *ops, bucket);
#else
  reducer = make_mpi_allreduce(world, bucket);  // host memory, or a world of one (no reduction)
#endif
  if (root()) {
    writer = std::make_unique<CheckpointWriter>(checkpoint_dir, cfg.model, net->layout(), cfg.train.keep_checkpoints);
  }
}

// One iteration on this rank: its slice of the global batch, forward, backward with the
// bucketed all-reduce overlapped, then one small all-reduce in which the ranks agree on
// the loss, on whether anything was NaN/Inf and on the stop flag; all ranks then apply
// the same update (or all skip it).
Trainer::Impl::StepResult Trainer::Impl::train_step() {
  const TrainConfig& tc = cfg.train;
  const int T = diffusion->num_timesteps(), B = tc.batch_size, rank = world.rank();
  const int64_t iteration = state.iteration;
  const auto iteration32 = static_cast<uint32_t>(iteration);
  std::vector<int> t(local_batch);
  std::vector<float> t_float(local_batch);
  std::vector<double> losses(local_batch);

  enter(phase::kData);
  const data::Batch batch = loader->next();
  const auto first = static_cast<uint32_t>(batch.first_global_example);

  enter(phase::kForward);
  ops->images_to_model(x0, batch.pixels.data(), local_batch * per_example);
  for (int i = 0; i < local_batch; ++i) {
    t[i] = draw_timestep(tc.seed, iteration32, first + i, T);
    t_float[i] = static_cast<float>(t[i]);
  }
  ops->upload(t_dev, t_float.data(), local_batch);
  ops->fill_normal(noise, local_batch, per_example, tc.seed, Purpose::kNoise, 0, iteration32, first);
  ops->q_sample(*diffusion, x_t, x0, noise, t.data(), local_batch, per_example);
  Pass ps;
  ps.ops = ops.get(), ps.params = params, ps.grads = grads, ps.N = local_batch, ps.training = true;
  ps.version = version;
  ps.dropout = DropoutKey{tc.seed, 0, iteration32, first};
  net->forward(ps, out, x_t, t_dev);
  // grad_weight 1/B: summing the ranks' gradients gives that of the global mean loss, so
  // the averaging is this scale, not a pass of its own.
  ops->training_losses(*diffusion, losses.data(), dout, out, x0, x_t, noise, t.data(), local_batch, per_example,
                       1.0 / B);
  if (faults.fires(FaultKind::kNanLoss, rank, iteration)) losses[0] = NAN;

  enter(phase::kBackward);
  ops->zero(grads, P);
  if (faults.fires(FaultKind::kNanGrad, rank, iteration)) {
    const float nan = NAN;
    ops->upload(grads, &nan, 1);  // offset 0 is the last bucket to go: it must reach the others
  }
  reducer->begin(grads, P);
  net->backward(ps, dout, [&](int64_t from) { reducer->ready(from); });
  enter(phase::kAllReduce);
  reducer->finish();

  enter(phase::kAgreement);
  StepResult r;
  r.grad_norm = std::sqrt(ops->sum_squares(grads, P));
  double* stats = r.stats;
  for (int i = 0; i < local_batch; ++i) {
    const int q = std::min(3, t[i] * 4 / T);
    stats[kLossSum] += losses[i];
    stats[kQuartileSum + q] += losses[i];
    stats[kQuartileCount + q] += 1;
  }
  stats[kNonFinite] = std::isfinite(stats[kLossSum]) && std::isfinite(r.grad_norm) ? 0 : 1;
  stats[kStopUsr1] = stop_signal() == SIGUSR1 ? 1 : 0;
  stats[kStopTerm] = stop_signal() == SIGTERM ? 1 : 0;
  world.sum(stats, kNumStats);

  enter(phase::kOptimizer);
  r.applied = stats[kNonFinite] == 0;
  if (r.applied) {
    // Optimizer::step with the norm computed above: it had to be agreed on before the update.
    ops->adam_ema_update(params, m, v, ema, grads, P, optimizer->next_step(r.grad_norm));
    optimizer->set_step_count(optimizer->step_count() + 1);
    ++version;
    state.step = optimizer->step_count();
  }
  if (faults.fires(FaultKind::kPerturbParam, rank, iteration)) {
    float first_param = 0;
    ops->download(&first_param, params, 1);
    first_param += 1e-3f;
    ops->upload(params, &first_param, 1);
    ++version;
  }
  ++state.iteration;
  state.data_epoch = batch.next.epoch;
  state.data_position = batch.next.position;
  return r;
}

// The replicas must stay bitwise identical (same data, same reduced gradient, same
// update). Every rank hashes its parameters; any difference ends the job before a
// checkpoint could capture one rank's drift.
void Trainer::Impl::check_replicas() {
  if (world.size() == 1) return;
  enter(phase::kConsistency);
  const float* host = params;
  if (!ops->host_memory()) {
    if (!replica_scratch) replica_scratch = alloc_host_floats(P);
    ops->download(replica_scratch.get(), params, P);
    host = replica_scratch.get();
  }
  const std::vector<int64_t> hashes = world.allgather(tensor_crc32(host, P));
  std::string differing;
  for (size_t r = 1; r < hashes.size(); ++r) {
    if (hashes[r] != hashes[0]) differing += cat(differing.empty() ? "" : ", ", r);
  }
  if (differing.empty()) return;
  world.abort_agreed(kExitInternal,
                     cat("ddpm_train: error: the parameters differ across ranks after step ", state.step,
                         " (iteration ", state.iteration, "): rank(s) ", differing,
                         " differ from rank 0; replicas must stay identical (a non-deterministic kernel, a "
                         "hardware fault or a bug): resume from the last checkpoint"));
}

void Trainer::Impl::start_checkpoint() {
  if (!root()) return;
  enter(phase::kCheckpoint);
  writer->start(*ops, TrainBuffers{params, ema, m, v}, state);
}

// Rank 0 logs the background writes that finished.
void Trainer::Impl::report_checkpoints() {
  if (!root()) return;
  for (const CheckpointWriter::Outcome& o : writer->take_finished()) {
    if (o.ok) {
      say(cat("checkpoint ", o.path, " (", static_cast<int>(o.seconds * 1000), " ms)"));
    } else {
      say(cat("warning: checkpoint at step ", o.step, " failed: ", o.error, "; the previous checkpoint is intact"));
    }
  }
}

void Trainer::Impl::abort_after_skips(int64_t skips, bool loss_was_finite) {
  // The weights are those of the last good step; the checkpoint records the skipped
  // batches, so a resume (say with a lower train.lr) starts after them.
  enter(phase::kFinish);
  if (root()) {
    writer->start(*ops, TrainBuffers{params, ema, m, v}, state);
    writer->wait();
    report_checkpoints();
  }
  world.abort_agreed(kExitInternal, cat("ddpm_train: error: ", skips, " steps in a row had a NaN/Inf ",
                                        loss_was_finite ? "gradient" : "loss", " (iteration ", state.iteration,
                                        ", train.max_nonfinite_skips = ", cfg.train.max_nonfinite_skips,
                                        "); lower train.lr or check the data"));
}

// A grid of EMA samples, drawn by all ranks (rank 0 lends its EMA weights).
void Trainer::Impl::sample_grid() {
  enter(phase::kSampleGrid);
  const int W = world.size(), count = cfg.train.sample_count;
  const int per_rank = (count + W - 1) / W;
  const float* weights = ema;
  if (!root()) {
    if (!sample_weights) sample_weights = ops->alloc(P);
    weights = sample_weights;
  }
  HostFloats host = alloc_host_floats(P);
  if (root()) ops->download(host.get(), ema, P);
  world.broadcast(host.get(), P);
  if (!root()) ops->upload(sample_weights, host.get(), P);
  SamplerOptions so;
  so.kind = cfg.train.sample_sampler;
  so.steps = cfg.train.sample_steps;
  so.seed = cfg.train.seed;
  Sampler sampler(*net, *ops, *diffusion, so);
  std::vector<float> mine(static_cast<size_t>(per_rank) * per_example), all;
  if (root()) all.resize(static_cast<size_t>(per_rank) * W * per_example);
  const double t0 = now_seconds();
  // Each sampler step is progress: the watchdog times steps, not the whole grid.
  sampler.sample(weights, version + (uint64_t{1} << 40), int64_t{world.rank()} * per_rank, per_rank, mine.data(),
                 nullptr, [&](int, int) { watchdog->beat(); });
  world.gather(all.data(), mine.data(), static_cast<int64_t>(per_rank) * per_example);
  net->prepare(*ops, local_batch);
  if (!root()) return;
  const int R = cfg.model.resolution, C = cfg.model.in_channels;
  const std::vector<uint8_t> bytes = to_uint8(all.data(), static_cast<int64_t>(count) * per_example);
  int gh = 0, gw = 0;
  const int cols = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(count))));
  const std::vector<uint8_t> grid = make_grid(bytes.data(), count, R, R, C, cols, 2, &gh, &gw);
  char name[64];
  std::snprintf(name, sizeof(name), "step-%08lld.png", static_cast<long long>(state.step));
  write_png(fs::join(samples_dir, name), grid.data(), gh, gw, C);
  say(cat("samples ", fs::join(samples_dir, name), " (", count, " images, ", sampler.timesteps().size(), " steps, ",
          static_cast<int>(now_seconds() - t0), " s)"));
}

// The end of a run, done or stopped: rank 0 commits a checkpoint of the current step
// (unless it has one) and waits for it; only then do the ranks learn the outcome and
// exit together, so no rank leaves — and no launcher tears the job down — before the
// checkpoint is on disk.
int Trainer::Impl::finish(int status, const std::string& stop_reason) {
  check_replicas();
  enter(phase::kFinish);
  int64_t committed = 1;
  if (root()) {
    if (state.step != checkpointed_step && writer->last_committed_step() != state.step) {
      writer->start(*ops, TrainBuffers{params, ema, m, v}, state);
    }
    writer->wait();
    report_checkpoints();
    committed = state.step == checkpointed_step || writer->last_committed_step() == state.step;
  }
  world.broadcast(&committed, 1);
  if (!committed) {
    const std::vector<std::string> left = root() ? list_checkpoints(checkpoint_dir) : std::vector<std::string>{};
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
  const int B = tc.batch_size;
  double stats_acc[kNumStats] = {0};
  int64_t interval_steps = 0, interval_skipped = 0, consecutive_skips = 0;
  double interval_start = now_seconds(), last_norm = 0, comm_wait = 0;
  const int64_t start_step = state.step;
  const double run_start = now_seconds();
  net->prepare(*ops, local_batch);
  if (root()) {
    if (!faults.empty()) {
      say(cat("warning: ", FaultInjector::kVariable, "=", faults.spec(), " is set: injecting faults (tests only)"));
    }
    say(cat(checkpointed_step < 0 ? std::string("training")
                                  : cat("resuming at step ", state.step, " from ", start_path, " (written by ",
                                        start_world_size, " rank(s))"),
            ": ", world.size(), " rank(s) x ", local_batch, " images, ", net->layout().num_parameters(),
            " parameters, backend ", ops->name()));
  }
  while (state.step < tc.total_steps) {
    const StepResult r = train_step();
    const double* stats = r.stats;
    comm_wait += reducer->last_wait_seconds();
    if (!r.applied) {
      ++state.nonfinite_skips;
      ++interval_skipped;
      if (++consecutive_skips >= tc.max_nonfinite_skips) {
        abort_after_skips(consecutive_skips, std::isfinite(stats[kLossSum]));
      }
    } else {
      consecutive_skips = 0;
      last_norm = r.grad_norm;
      for (int k = 0; k < kNonFinite; ++k) stats_acc[k] += stats[k];
      ++interval_steps;
    }

    const bool last = state.step >= tc.total_steps;
    const bool stop = stats[kStopUsr1] + stats[kStopTerm] > 0;
    const bool boundary = (r.applied && state.step % tc.log_every == 0) || last || stop;
    const double elapsed = now_seconds() - run_start;
    const double steps_per_s = (state.step - start_step) / std::max(elapsed, 1e-9);
    StepReport rep;
    rep.step = state.step, rep.total_steps = tc.total_steps, rep.iteration = state.iteration;
    rep.loss = interval_steps ? stats_acc[kLossSum] / (static_cast<double>(interval_steps) * B) : NAN;
    rep.lr = optimizer->learning_rate(std::max<int64_t>(state.step - 1, 0));
    rep.grad_norm = last_norm;
    rep.eta_s = (tc.total_steps - state.step) / std::max(steps_per_s, 1e-9);
    if (root()) {
      rep.images_per_s = steps_per_s * B;
      log->progress(rep);
    }
    if (boundary && root() && (interval_steps > 0 || interval_skipped > 0)) {
      for (int q = 0; q < 4; ++q) {
        const double n = stats_acc[kQuartileCount + q];
        rep.loss_quartile[q] = n > 0 ? stats_acc[kQuartileSum + q] / n : NAN;
      }
      rep.images_per_s = (interval_steps + interval_skipped) * B / std::max(now_seconds() - interval_start, 1e-9);
      rep.skipped = interval_skipped;
      rep.comm_wait_s = comm_wait / std::max<int64_t>(interval_steps + interval_skipped, 1);
      log->record(rep);
    }
    if (boundary) {
      std::fill(std::begin(stats_acc), std::end(stats_acc), 0.0);
      interval_steps = interval_skipped = 0;
      comm_wait = 0;
      interval_start = now_seconds();
    }
    report_checkpoints();
    if (last || stop) {
      const int status = finish(last ? kExitOk : kExitRequeue, signal_names(stats));
      if (status == kExitOk) say(cat("done: step ", state.step, " in ", format_duration(now_seconds() - run_start)));
      return status;
    }
    if (r.applied && state.step % tc.log_every == 0) check_replicas();
    if (r.applied && tc.sample_every > 0 && state.step % tc.sample_every == 0) sample_grid();
    if (r.applied && state.step % tc.checkpoint_every == 0) start_checkpoint();
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
    if (im.root()) im.read_start_point();
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
