#include "core/sampler.h"

#include <algorithm>

#include "core/common.h"
#include "core/diffusion_ops.h"
#include "core/rng.h"

namespace ddpm {

Sampler::Sampler(UNet& net, Ops& ops, const Diffusion& diffusion, const SamplerOptions& options)
    : net_(net), ops_(ops), diffusion_(diffusion), options_(options) {
  const int T = diffusion.num_timesteps();
  if (options.kind == "ancestral") {
    kind_ = Kind::kAncestral;
    for (int t = T - 1; t >= 0; --t) timesteps_.push_back(t);
  } else if (options.kind == "ddim") {
    kind_ = Kind::kDdim;
    const std::vector<int> ascending = ddim_timesteps(T, options.steps > 0 ? options.steps : T);
    timesteps_.assign(ascending.rbegin(), ascending.rend());
  } else {
    input_error("unknown sampler '", options.kind, "' (ancestral or ddim)");
  }
  if (options.eta < 0 || options.eta > 1) input_error("DDIM eta must be in [0, 1], got ", options.eta);
  const ModelConfig& m = net.config();
  per_example_ = m.values_per_image();
  if (m.out_ch != m.in_channels) input_error("sampling needs out_ch == in_channels (the model predicts epsilon)");
}

Sampler::~Sampler() = default;

// Snapshots are counted from the end, as the reference's progressive loop keeps them at
// t ≡ 0 (mod K): the last step (t = 0 for ancestral sampling, the final sample's x̂₀)
// always, then every K-th step before it.
int Sampler::num_snapshots() const {
  if (options_.progressive_every <= 0) return 0;
  const int steps = static_cast<int>(timesteps_.size());
  return (steps - 1) / options_.progressive_every + 1;
}

std::vector<int> Sampler::snapshot_timesteps() const {
  std::vector<int> ts;
  const int steps = static_cast<int>(timesteps_.size());
  for (int k = 0; k < steps && options_.progressive_every > 0; ++k) {
    if ((steps - 1 - k) % options_.progressive_every == 0) ts.push_back(timesteps_[k]);
  }
  return ts;
}

void Sampler::ensure_buffers(int n) {
  if (n == n_) return;
  for (Buffer* b : {&x_, &eps_, &noise_, &xstart_, &t_dev_}) b->reset();  // the old ones go first
  n_ = n;
  const int64_t size = n * per_example_;
  x_ = Buffer(ops_, size);
  eps_ = Buffer(ops_, size);
  noise_ = Buffer(ops_, size);
  xstart_ = Buffer(ops_, size);
  t_dev_ = Buffer(ops_, n);
}

void Sampler::sample(const ParamBuffer& weights, int64_t first_index, int n, float* out_host,
                     std::vector<float>* progressive_host, const SampleProgressFn& progress) {
  DDPM_CHECK(n > 0 && first_index >= 0 && first_index + n <= (int64_t{1} << 32), "sample range");
  begin(weights, n);
  const uint32_t first = static_cast<uint32_t>(first_index);
  ops_.diffusion().fill_normal(x_.get(), n, per_example_, options_.seed, Purpose::kSample, kSampleInitialNoise, 0,
                               first);
  if (progressive_host) progressive_host->assign(static_cast<size_t>(num_snapshots()) * n * per_example_, 0.0f);
  run_steps(weights, 0, n, StepNoise{first, false}, progressive_host, progress);
  ops_.download(out_host, x_.get(), n * per_example_);
}

void Sampler::denoise_shared_noise(const ParamBuffer& weights, int t, uint32_t noise_index, int n, float* x_host) {
  const auto at = std::find(timesteps_.begin(), timesteps_.end(), t);
  if (at == timesteps_.end()) input_error("timestep ", t, " is not one the ", options_.kind, " sampler visits");
  DDPM_CHECK(n > 0, "denoise: no items");
  begin(weights, n);
  ops_.upload(x_.get(), x_host, n * per_example_);
  run_steps(weights, static_cast<int>(at - timesteps_.begin()), n, StepNoise{noise_index, true}, nullptr, nullptr);
  ops_.download(x_host, x_.get(), n * per_example_);
}

void Sampler::begin(const ParamBuffer& weights, int n) {
  ensure_buffers(n);
  net_.prepare(ops_, n, PlanMode::kForwardOnly);
  // Every step's forward uses the same buffers and weights within this call: the
  // backend may record it once and replay it (CUDA graphs, see Ops::run_graph).
  ops_.drop_graphs();
}

void Sampler::run_steps(const ParamBuffer& weights, int k_begin, int n, StepNoise step_noise,
                        std::vector<float>* progressive_host, const SampleProgressFn& progress) {
  Pass ps;
  ps.ops = &ops_, ps.params = weights.get(), ps.version = weights.version(), ps.N = n;
  const int steps = static_cast<int>(timesteps_.size());
  DiffusionOps& kernels = ops_.diffusion();
  const DiffusionTable& table = diffusion_.table();
  std::vector<int> t(n), t_prev(n);
  std::vector<float> t_float(n);
  for (int k = k_begin; k < steps; ++k) {
    const int tk = timesteps_[k];
    std::fill(t.begin(), t.end(), tk);
    std::fill(t_float.begin(), t_float.end(), static_cast<float>(tk));
    ops_.upload(t_dev_.get(), t_float.data(), n);
    ops_.run_graph(0, [&] { net_.forward(ps, eps_.get(), x_.get(), t_dev_.get()); });
    const bool noisy = kind_ == Kind::kAncestral ? tk > 0 : (options_.eta > 0 && k + 1 < steps);
    if (noisy && step_noise.shared) {  // one stream, copied to every item
      kernels.fill_normal(noise_.get(), 1, per_example_, options_.seed, Purpose::kSample, kSampleStepNoise,
                          static_cast<uint32_t>(tk), step_noise.index);
      for (int i = 1; i < n; ++i) ops_.copy(noise_.get() + i * per_example_, noise_.get(), per_example_);
    } else if (noisy) {
      kernels.fill_normal(noise_.get(), n, per_example_, options_.seed, Purpose::kSample, kSampleStepNoise,
                          static_cast<uint32_t>(tk), step_noise.index);
    }
    if (kind_ == Kind::kAncestral) {
      kernels.p_sample(table, x_.get(), xstart_.get(), eps_.get(), x_.get(), noise_.get(), t.data(), n, per_example_);
    } else {
      std::fill(t_prev.begin(), t_prev.end(), k + 1 < steps ? timesteps_[k + 1] : -1);
      kernels.ddim_sample(table, x_.get(), xstart_.get(), eps_.get(), x_.get(), noisy ? noise_.get() : nullptr,
                          t.data(), t_prev.data(), n, per_example_, options_.eta);
    }
    const int from_end = steps - 1 - k;
    if (progressive_host && from_end % options_.progressive_every == 0) {
      const int snap = num_snapshots() - 1 - from_end / options_.progressive_every;
      ops_.download(progressive_host->data() + static_cast<size_t>(snap) * n * per_example_, xstart_.get(),
                    n * per_example_);
    }
    if (progress) progress(k + 1, steps);
  }
}

}  // namespace ddpm
