// FID during training (train.fid_every; docs/evaluation.md). Every rank draws its share
// of train.fid_num samples from the EMA weights with DDIM (train.fid_steps, η = 0; the
// noise is keyed by (seed, image), so each measurement draws the same images up to the
// weights), runs them through the Inception network on its backend and sends the pool_3
// features to rank 0, which measures the distance to the reference statistics.
// train.fid_ref is a statistics .npz (mu, sigma), read as it is (its provenance must
// match), or a set of images, measured by all ranks at the first measurement and cached
// in the run directory as fid_ref-<key>.npz, the key a CRC-32 of everything the
// statistics depend on: the reference's content (its bytes, or a folder's listing with
// sizes and times), the Inception weights' SHA-256, the resize, the precision and
// fid_num; so a resumed run does not measure them again, and a changed input is measured
// anew. The Inception always runs in fp32 (a second backend when the run trains in bf16
// or tf32), as ddpm_eval does, so both give the same number.
//
// The number is a training curve (DDIM with fid_steps steps, fid_num samples of the
// EMA), not the paper's Table 1 FID (50,000 samples of the 1000-step ancestral sampler):
// metrics.jsonl calls it train_fid.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "eval/fid.h"
#include "train/run_context.h"

namespace ddpm {

class ParamBuffer;
class UNet;

class TrainingFid {
 public:
  // Every rank: finds the Inception weights and the reference (InputError naming what is
  // missing) and loads the network on run.ops.
  TrainingFid(const RunContext& run, const std::string& run_dir);
  ~TrainingFid();
  TrainingFid(const TrainingFid&) = delete;
  TrainingFid& operator=(const TrainingFid&) = delete;

  // Collective: the FID of samples drawn with `weights` (every rank's copy of the EMA)
  // through `sample_net` (forward only), on rank 0; NaN on the others. `beat` is called
  // after every sampler step and Inception batch (the watchdog's).
  double measure(const ParamBuffer& weights, UNet& sample_net, const std::function<void()>& beat);
  // "resize tf, published Inception weights" (what the log and metrics.jsonl record).
  const eval::InceptionEvaluator& evaluator() const { return *evaluator_; }

 private:
  // Collective: the reference statistics on rank 0 (empty elsewhere).
  const eval::FeatureStats& reference_stats(const std::function<void()>& beat);
  // Collective: the pool_3 rows of `mine`, this rank's share of `total` images (rank r
  // holds [r·ceil(total/W), ...)), gathered on rank 0 in image order (empty elsewhere).
  eval::FeatureMatrix gather_pool3(eval::ImageSet& mine, int64_t total, const std::function<void()>& beat);

  // The reference cache's path for the current inputs (rank 0).
  std::string cache_path() const;

  const RunContext run_;
  const std::string run_dir_;
  std::unique_ptr<Ops> fp32_ops_;  // when the run's backend computes in bf16 or tf32
  std::unique_ptr<eval::InceptionEvaluator> evaluator_;
  eval::FeatureStats reference_;  // rank 0, once measured or read
};

}  // namespace ddpm
