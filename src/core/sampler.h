// The reverse process with the U-Net: ancestral sampling (Algorithm 2 of Ho et al.
// 2020, x̂₀ clipped as the reference code does) or DDIM with fewer steps (Song et al.
// 2021). Every random number is keyed by (seed, global image index, timestep), so an
// image does not depend on the batch it was drawn in, nor on the number of ranks.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/buffer.h"
#include "core/diffusion.h"
#include "core/ops.h"
#include "core/unet.h"

namespace ddpm {

struct SamplerOptions {
  std::string kind = "ancestral";  // ancestral | ddim
  int steps = 0;                   // DDIM steps (0: every timestep); ancestral always runs T
  double eta = 0.0;                // DDIM noise (0: deterministic)
  uint64_t seed = 0;
  int progressive_every = 0;       // keep x̂₀ every this many steps, ending at the last (0: off)
};

// Called after each denoising step with (steps done, steps in all).
using SampleProgressFn = std::function<void(int, int)>;

class Sampler {
 public:
  // The model must already hold its config; `ops` must outlive the sampler. sample()
  // prepares `net` for forward only: give it a net of its own, not one that trains.
  Sampler(UNet& net, Ops& ops, const Diffusion& diffusion, const SamplerOptions& options);
  ~Sampler();
  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;

  // The timesteps visited, in the order they are visited (T-1 down to 0 for ancestral).
  const std::vector<int>& timesteps() const { return timesteps_; }
  int num_snapshots() const;
  // The timestep of each snapshot in sampling order: every K-th step counted back from
  // the last, so for ancestral sampling every t ≡ 0 (mod K), down to t = 0.
  std::vector<int> snapshot_timesteps() const;

  // Draws images first_index .. first_index + n - 1 with `weights` (the model's flat
  // layout) into out_host [n, R, R, C] (NHWC, [-1, 1]).
  // progressive_host (nullable) receives num_snapshots() x [n, R, R, C] x̂₀ predictions.
  void sample(const ParamBuffer& weights, int64_t first_index, int n, float* out_host,
              std::vector<float>* progressive_host, const SampleProgressFn& progress = nullptr);
  // The reverse process from x_t, every item at timestep t (one the sampler visits), to
  // x_0: x_host [n, R, R, C] holds x_t on entry and the result on return. Every item's
  // step noise is the one stream (seed, kSample, kSampleStepNoise, t, noise_index), so
  // items that start alike end alike (interpolation: λ = 0 and 1 reconstruct the
  // sources). InputError for a timestep the sampler does not visit.
  void denoise_shared_noise(const ParamBuffer& weights, int t, uint32_t noise_index, int n, float* x_host);

 private:
  enum class Kind { kAncestral, kDdim };  // SamplerOptions::kind, parsed once

  // Whose step noise: items index, index + 1, ... or, shared, all of them `index`.
  struct StepNoise {
    uint32_t index = 0;
    bool shared = false;
  };
  void ensure_buffers(int n);
  void begin(const ParamBuffer& weights, int n);  // buffers, plan, no stale graphs
  // Steps k_begin .. end from x_ (in place).
  void run_steps(const ParamBuffer& weights, int k_begin, int n, StepNoise step_noise,
                 std::vector<float>* progressive_host, const SampleProgressFn& progress);

  UNet& net_;
  Ops& ops_;
  const Diffusion& diffusion_;
  SamplerOptions options_;
  Kind kind_ = Kind::kAncestral;
  std::vector<int> timesteps_;
  int n_ = 0;
  int64_t per_example_ = 0;
  Buffer x_, eps_, noise_, xstart_, t_dev_;
};

// Global image index i's stream id for sampling noise: (seed, Purpose::kSample, sub_id,
// step) with sub_id 1 for x_T and 0 for the noise of the step at timestep t (step = t);
// sub_id 2 is the q-sample that encodes an interpolation's source (index: 2 pair + side).
constexpr uint32_t kSampleInitialNoise = 1;
constexpr uint32_t kSampleStepNoise = 0;
constexpr uint32_t kSampleEncodeNoise = 2;

}  // namespace ddpm
