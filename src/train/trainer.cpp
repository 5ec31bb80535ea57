#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <thread>

#include "core/backend.h"
#include "core/common.h"
#include "core/diffusion.h"
#include "core/fs.h"
#include "core/optim.h"
#include "core/rng.h"
#include "core/sampler.h"
#include "core/unet.h"
#include "data/loader.h"
#include "dist/allreduce.h"
#include "dist/signals.h"
#include "dist/world.h"
#include "train/checkpoint.h"
#include "train/image_out.h"
#include "train/train_log.h"

namespace ddpm {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Per-step values every rank contributes to one all-reduce: the loss, the loss by t
// quartile, and the stop flag (SIGUSR1/SIGTERM on any rank stops all of them).
enum StepStat { kLossSum, kQuartileSum, kQuartileCount = kQuartileSum + 4, kStop = kQuartileCount + 4, kNumStats };

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

}  // namespace

struct Trainer::Impl {
  World& world;
  Config cfg;
  TrainOptions opt;
  std::string checkpoint_dir, samples_dir;
  std::unique_ptr<Ops> ops;
  std::unique_ptr<UNet> net;
  std::unique_ptr<Diffusion> diffusion;
  std::unique_ptr<Optimizer> optimizer;
  std::unique_ptr<data::Loader> loader;
  std::unique_ptr<GradientAllReduce> reducer;
  std::unique_ptr<TrainLog> log;
  int64_t P = 0, per_example = 0;
  int local_batch = 0;
  // Backend buffers with the parameter layout, and the step's activations.
  float *params = nullptr, *grads = nullptr, *m = nullptr, *v = nullptr, *ema = nullptr;
  float *x0 = nullptr, *x_t = nullptr, *noise = nullptr, *out = nullptr, *dout = nullptr, *t_dev = nullptr;
  float* sample_weights = nullptr;  // ranks other than 0: EMA copy for the sample grids
  TrainState state;
  uint64_t version = 1;
  uint32_t dataset_checksum = 0;

  Impl(World& w, const Config& c, const TrainOptions& o) : world(w), cfg(c), opt(o) {}
  ~Impl() {
    if (!ops) return;
    for (float* p : {params, grads, m, v, ema, x0, x_t, noise, out, dout, t_dev, sample_weights}) {
      if (p) ops->release(p);
    }
  }

  bool root() const { return world.is_root(); }
  void say(const std::string& text) {
    if (log) log->line(text);
  }

  void setup_local();
  std::string choose_checkpoint();
  void load_or_init(const std::string& checkpoint);
  void write_checkpoint_now();
  void sample_grid();
  int loop();
};

// Everything a rank can check on its own: the run directory, the model, the backend and
// the dataset. Collective calls only start after the ranks agree that this worked.
void Trainer::Impl::setup_local() {
  const int W = world.size();
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

// Rank 0 picks the newest checkpoint that reads back intact and matches the config;
// corrupt ones are skipped with a warning. Returns "" for a fresh run.
std::string Trainer::Impl::choose_checkpoint() {
  HostFloats scratch = alloc_host_floats(P);
  for (const std::string& path : list_checkpoints(checkpoint_dir)) {
    TrainState s;
    try {
      s = read_checkpoint(path, net->layout(), TrainBuffers{scratch.get(), nullptr, nullptr, nullptr});
    } catch (const InputError& e) {
      say(cat("warning: skipping checkpoint: ", e.what()));
      continue;
    }
    const Config saved = parse_config(s.config_yaml, path + " (config)");
    for (const char* section : {"model", "diffusion"}) {
      const std::string diff = config_difference(saved, cfg, section);
      if (!diff.empty()) {
        input_error(path, ": this run was trained with another ", section, " config (", diff, " in ",
                    opt.config_source, "); use a new --run-dir");
      }
    }
    if (s.dataset_checksum != static_cast<int64_t>(dataset_checksum)) {
      say(cat("warning: ", cfg.data.path, " differs from the dataset this run started on (checksum)"));
    }
    return path;
  }
  return "";
}

void Trainer::Impl::load_or_init(const std::string& checkpoint) {
  for (float** p : {&params, &grads, &m, &v}) *p = ops->alloc(P);
  if (root()) ema = ops->alloc(P);
  const int64_t act = local_batch * per_example;
  for (float** p : {&x0, &x_t, &noise, &out, &dout}) *p = ops->alloc(act);
  t_dev = ops->alloc(local_batch);
  HostFloats hp = alloc_host_floats(P), hm = alloc_host_floats(P), hv = alloc_host_floats(P);
  HostFloats he = alloc_host_floats(root() ? P : 1);
  if (checkpoint.empty()) {
    if (root()) init_params(net->layout(), hp.get(), cfg.train.seed);
    world.broadcast(hp.get(), P);  // every rank starts from rank 0's weights
    if (root()) std::copy(hp.get(), hp.get() + P, he.get());  // the EMA starts as the weights
    state = TrainState{};
  } else {
    state = read_checkpoint(checkpoint, net->layout(), TrainBuffers{hp.get(), root() ? he.get() : nullptr, hm.get(),
                                                                    hv.get()});
  }
  ops->upload(params, hp.get(), P);
  ops->upload(m, hm.get(), P);
  ops->upload(v, hv.get(), P);
  if (root()) ops->upload(ema, he.get(), P);
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
  reducer = make_mpi_allreduce(world, bucket);
}

void Trainer::Impl::write_checkpoint_now() {
  if (!root()) return;
  const double t0 = now_s();
  // Host snapshots of the backend buffers (on the CPU backend these are the buffers).
  HostFloats hp, hm, hv, he;
  TrainBuffers b{params, ema, m, v};
  if (!ops->host_memory()) {
    hp = alloc_host_floats(P), hm = alloc_host_floats(P), hv = alloc_host_floats(P), he = alloc_host_floats(P);
    ops->download(hp.get(), params, P);
    ops->download(hm.get(), m, P);
    ops->download(hv.get(), v, P);
    ops->download(he.get(), ema, P);
    b = TrainBuffers{hp.get(), he.get(), hm.get(), hv.get()};
  }
  try {
    const std::string path =
        write_checkpoint(checkpoint_dir, cfg.model, net->layout(), b, state, cfg.train.keep_checkpoints);
    say(cat("checkpoint ", path, " (", static_cast<int>((now_s() - t0) * 1000), " ms)"));
  } catch (const InputError& e) {
    // The previous checkpoint is intact; training goes on and tries again next time.
    say(cat("warning: checkpoint at step ", state.step, " failed: ", e.what()));
  }
}

// A grid of EMA samples, drawn by all ranks (rank 0 lends its EMA weights).
void Trainer::Impl::sample_grid() {
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
  const double t0 = now_s();
  sampler.sample(weights, version + (uint64_t{1} << 40), int64_t{world.rank()} * per_rank, per_rank, mine.data(),
                 nullptr);
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
          static_cast<int>(now_s() - t0), " s)"));
}

int Trainer::Impl::loop() {
  const TrainConfig& tc = cfg.train;
  const int T = diffusion->num_timesteps(), B = tc.batch_size;
  std::vector<int> t(local_batch);
  std::vector<float> t_float(local_batch);
  std::vector<double> losses(local_batch);
  double stats_acc[kNumStats] = {0};
  int64_t interval_steps = 0, interval_skipped = 0, consecutive_skips = 0;
  double interval_start = now_s(), last_norm = 0, comm_wait = 0;
  const int64_t start_step = state.step;
  const double run_start = now_s();
  Pass ps;
  ps.ops = ops.get(), ps.params = params, ps.grads = grads, ps.N = local_batch, ps.training = true;
  net->prepare(*ops, local_batch);
  if (root()) {
    say(cat(state.step == 0 ? "training" : "resuming at step " + std::to_string(state.step), ": ", world.size(),
            " rank(s) x ", local_batch, " images, ", net->layout().num_parameters(), " parameters, backend ",
            ops->name()));
  }
  while (state.step < tc.total_steps) {
    const uint32_t iteration = static_cast<uint32_t>(state.iteration);
    data::Batch batch;
    try {
      batch = loader->next();
    } catch (const InputError& e) {
      world.abort(kExitBadInput, cat("ddpm_train: error: rank ", world.rank(), ": ", e.what()));
    }
    const uint32_t first = static_cast<uint32_t>(batch.first_global_example);
    ops->images_to_model(x0, batch.pixels.data(), local_batch * per_example);
    for (int i = 0; i < local_batch; ++i) {
      t[i] = draw_timestep(tc.seed, iteration, first + i, T);
      t_float[i] = static_cast<float>(t[i]);
    }
    ops->upload(t_dev, t_float.data(), local_batch);
    ops->fill_normal(noise, local_batch, per_example, tc.seed, Purpose::kNoise, 0, iteration, first);
    ops->q_sample(*diffusion, x_t, x0, noise, t.data(), local_batch, per_example);
    ps.version = version;
    ps.dropout = DropoutKey{tc.seed, 0, iteration, first};
    net->forward(ps, out, x_t, t_dev);
    // grad_weight 1/B: summing the ranks' gradients gives that of the global mean loss.
    ops->training_losses(*diffusion, losses.data(), dout, out, x0, x_t, noise, t.data(), local_batch, per_example,
                         1.0 / B);
    ops->zero(grads, P);
    reducer->begin(grads, P);
    net->backward(ps, dout, [&](int64_t from) { reducer->ready(from); });
    reducer->finish();
    comm_wait += reducer->last_wait_seconds();

    double stats[kNumStats] = {0};
    for (int i = 0; i < local_batch; ++i) {
      const int q = std::min(3, t[i] * 4 / T);
      stats[kLossSum] += losses[i];
      stats[kQuartileSum + q] += losses[i];
      stats[kQuartileCount + q] += 1;
    }
    stats[kStop] = stop_requested() ? 1 : 0;
    world.sum(stats, kNumStats);
    const double loss = stats[kLossSum] / B;
    const double norm = std::isfinite(loss) ? optimizer->step(*ops, params, grads, m, v, ema, P) : NAN;
    ++state.iteration;
    state.data_epoch = batch.next.epoch;
    state.data_position = batch.next.position;
    if (!std::isfinite(norm)) {
      ++state.nonfinite_skips;
      ++interval_skipped;
      if (++consecutive_skips >= tc.max_nonfinite_skips) {
        if (root()) write_checkpoint_now();
        world.abort(kExitInternal, cat("ddpm_train: error: ", consecutive_skips, " steps in a row had a NaN/Inf ",
                                       std::isfinite(loss) ? "gradient" : "loss", " (iteration ", state.iteration,
                                       "); lower train.lr or check the data"));
      }
    } else {
      consecutive_skips = 0;
      ++version;
      state.step = optimizer->step_count();
      last_norm = norm;
      for (int k = 0; k < kStop; ++k) stats_acc[k] += stats[k];
      ++interval_steps;
    }

    const bool last = state.step >= tc.total_steps;
    const bool stop = stats[kStop] > 0;
    const double elapsed = now_s() - run_start;
    const double steps_per_s = (state.step - start_step) / std::max(elapsed, 1e-9);
    StepReport r;
    r.step = state.step, r.total_steps = tc.total_steps, r.iteration = state.iteration;
    r.loss = interval_steps ? stats_acc[kLossSum] / (static_cast<double>(interval_steps) * B) : NAN;
    r.lr = optimizer->learning_rate(std::max<int64_t>(state.step - 1, 0));
    r.grad_norm = last_norm;
    r.eta_s = (tc.total_steps - state.step) / std::max(steps_per_s, 1e-9);
    if (root() && log) {
      r.images_per_s = steps_per_s * B;
      log->progress(r);
    }
    if ((state.step % tc.log_every == 0 || last || stop) && (interval_steps > 0 || interval_skipped > 0) && root()) {
      for (int q = 0; q < 4; ++q) {
        r.loss_quartile[q] = stats_acc[kQuartileCount + q] > 0 ? stats_acc[kQuartileSum + q] / stats_acc[kQuartileCount + q] : NAN;
      }
      r.images_per_s = (interval_steps + interval_skipped) * B / std::max(now_s() - interval_start, 1e-9);
      r.skipped = interval_skipped;
      r.comm_wait_s = comm_wait / std::max<int64_t>(interval_steps + interval_skipped, 1);
      log->record(r);
    }
    if (state.step % tc.log_every == 0 || last || stop) {
      std::fill(std::begin(stats_acc), std::end(stats_acc), 0.0);
      interval_steps = interval_skipped = 0;
      comm_wait = 0;
      interval_start = now_s();
    }
    if (consecutive_skips == 0 && tc.sample_every > 0 && state.step % tc.sample_every == 0) sample_grid();
    if (consecutive_skips == 0 && (state.step % tc.checkpoint_every == 0 || last || stop)) write_checkpoint_now();
    if (stop && !last) {
      if (root()) say(cat("stopping at step ", state.step, " on a signal: checkpoint written, exit ", kExitRequeue));
      return kExitRequeue;
    }
  }
  if (root()) say(cat("done: step ", state.step, " in ", format_duration(now_s() - run_start)));
  return kExitOk;
}

Trainer::Trainer(World& world, const Config& config, const TrainOptions& options)
    : impl_(std::make_unique<Impl>(world, config, options)) {
  Impl& im = *impl_;
  std::string error;
  try {
    im.setup_local();
  } catch (const InputError& e) {
    error = e.what();
  }
  error = world.agree_on_error(error);
  if (!error.empty()) throw InputError(error);
  std::string checkpoint;
  try {
    if (im.root()) checkpoint = im.choose_checkpoint();
  } catch (const InputError& e) {
    error = e.what();
  }
  error = world.agree_on_error(error);
  if (!error.empty()) throw InputError(error);
  world.broadcast(&checkpoint);
  try {
    im.load_or_init(checkpoint);
  } catch (const InputError& e) {
    error = e.what();
  }
  error = world.agree_on_error(error);
  if (!error.empty()) throw InputError(error);
  if (im.root()) fs::write_text_atomic(fs::join(options.run_dir, "config.yaml"), config.to_yaml());
}

Trainer::~Trainer() = default;

int Trainer::run() { return impl_->loop(); }

}  // namespace ddpm
