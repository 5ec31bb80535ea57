// ddpm_eval bpd's work, on every rank: the variational bound of the first `num` images
// of a prepared dataset (in the dataset's order, unflipped), per image, as the
// reference's calc_bpd_loop computes it (Diffusion::calc_bpd_loop: every t from a
// fresh q-sample, x̂₀ clipped, the KL terms, the discretised decoder at t = 0, the
// prior term). Image i is evaluated by rank i / ceil(num / W) with q-sample noise keyed
// by (seed, i, t), so the result depends on neither the batch size nor the number of
// ranks. Rank 0 writes the terms to an HDF5 file and reports progress on stderr.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ddpm {
class World;
struct ModelSource;
}  // namespace ddpm

namespace ddpm::eval {

struct BpdJob {
  std::string data_dir;  // a prepared dataset (ddpm_prepare)
  int64_t num = 0;       // images from the start of the dataset; 0: all of them
  int64_t batch = 16;    // images per forward pass on each rank
  uint64_t seed = 0;     // of the q-sample noise
  std::string out_path;  // bpd.h5, written through out_path.tmp by rank 0
};

// Means over the images, in bits/dim (the paper's Table 2 names: L_0 the decoder,
// L_1..L_{T-1} the KL terms, L_T the prior).
struct BpdSummary {
  int64_t images = 0;
  double total = 0, total_stderr = 0;  // the bound and the standard error of its mean
  double decoder = 0;                  // L_0
  double kl = 0;                       // L_1 + ... + L_{T-1}
  double prior = 0;                    // L_T
};

// Collective. InputError for a dataset that does not fit the model or a bad job.
// Writes total_bpd [N], prior_bpd [N], terms_bpd [N, T] (column t: L_t, the decoder at
// t = 0) and mse [N, T] (mean (x̂₀ - x₀)² at each t), all float64, with the job's
// settings as attributes.
BpdSummary evaluate_bpd(World& world, const ModelSource& source, const BpdJob& job);

}  // namespace ddpm::eval
