// The paper's progressive lossy compression (Sec. 4.3, Table 4, Fig. 5) from the terms
// `ddpm_eval bpd` wrote: receiving x_T, x_{T-1}, ... costs the prior and then one KL term
// per step (the rate), and x̂₀ predicted from the latest x_t is the reconstruction (the
// distortion, RMSE on the [0, 255] scale).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ddpm::eval {

// One point per 0-based timestep t (column t of bpd.h5: x_t, the paper's x_{t+1}).
struct RateDistortionPoint {
  int t = 0;
  int reverse_steps = 0;     // T - t: steps of the reverse process taken to reach x_t
  double rate_bpd = 0;       // mean over images of L_T + sum_{u > t} L_u (bits/dim)
  double rmse_mean = 0;      // mean over images of each image's RMSE, [0, 255]
  double rmse_of_mean = 0;   // RMSE of the mean squared error over images, [0, 255]
};

struct RateDistortion {
  int64_t images = 0;
  int T = 0;
  std::vector<RateDistortionPoint> points;  // t = T-1 down to 0, in transmission order
};

// Reads bpd.h5 (total/prior/terms_bpd and mse, as evaluate_bpd writes them); InputError
// naming the file for a file that is not one.
RateDistortion rate_distortion(const std::string& bpd_path);

// The paper's Table 4 rows: reverse steps 1000, 900, ..., 100, scaled to rd's T.
std::vector<RateDistortionPoint> table4_rows(const RateDistortion& rd);

// DIR/rate_distortion.csv (every t) and DIR/table4.csv (the paper's rows: reverse steps
// 1000, 900, ..., 100, scaled to T). Through .tmp files, like every output.
void write_rate_distortion_csv(const RateDistortion& rd, const std::string& dir);

}  // namespace ddpm::eval
