// Feature statistics and the Fréchet distance between them (FID when the features are
// Inception pool features; Heusel et al. 2017, as TTUR and pytorch-fid compute it):
//   d² = |mu1 − mu2|² + tr(S1) + tr(S2) − 2 tr(sqrt(S1^½ S2 S1^½)).
// pytorch-fid takes scipy's sqrtm of S1·S2, which has the same trace; here it is the sum
// of the square roots of the eigenvalues of Lᵀ S2 L with L S1's Cholesky factor (LAPACK's
// dpotrf and dsyevd, OpenBLAS's triangular products; S1's eigendecomposition where S1 is
// singular), eigenvalues that rounding made negative clamped to 0, so the result is
// finite when N < D makes S1 or S2 singular.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "eval/features.h"
#include "io/npz.h"

namespace ddpm::eval {

// What made a set of statistics: two are only comparable when both came through the
// same resize and the same network weights (FID moves by more than the differences
// between good models otherwise). Written beside mu and sigma as inception_resize,
// inception_weights_sha256 and num_images; pytorch-fid's files have none.
struct StatsProvenance {
  std::string resize;                    // "tf", "torch", "pil-bicubic"; empty: not known
  std::string weights_sha256 = "unknown";  // of the .pth the Inception weights were converted from
  int64_t images = 0;

  bool known() const { return !resize.empty(); }
  // "resize tf, Inception weights sha256 6726825d0af5f729..."
  std::string describe() const;
};

// Mean and covariance of feature vectors, as numpy's mean(axis=0) and
// cov(rowvar=False) (divisor N − 1) give them in float64.
struct FeatureStats {
  int64_t dim = 0;
  std::vector<double> mu;     // [D]
  std::vector<double> sigma;  // [D, D], row-major, symmetric
  StatsProvenance provenance;
};

// Accumulates the statistics batch by batch in double (Chan, Golub and LeVeque's
// pairwise update of the mean and the centred scatter matrix), so features of any
// number of images can be streamed through it and batch boundaries only change rounding.
class FeatureStatsAccumulator {
 public:
  explicit FeatureStatsAccumulator(int64_t dim);

  // rows.dim must be the accumulator's dim; the values must be finite.
  void add(FeatureRows rows);
  int64_t count() const { return count_; }
  // Needs at least two feature vectors (an InputError otherwise).
  FeatureStats stats() const;

 private:
  void add_block(FeatureRows rows);

  int64_t dim_, count_ = 0;
  std::vector<double> mean_;
  std::vector<double> scatter_;  // sum of (x − mean)(x − mean)ᵀ, lower triangle, [D, D]
};

FeatureStats feature_stats(FeatureRows rows);

// The squared Fréchet distance. An InputError if the dimensions differ or a value is
// not finite.
double frechet_distance(const FeatureStats& a, const FeatureStats& b);

// Statistics files as pytorch-fid writes them (np.savez_compressed(path, mu=, sigma=)):
// `mu` [D] and `sigma` [D, D], float64 (float32 is read too), and the provenance when
// known (pytorch-fid ignores the extra arrays). Written uncompressed, in float64, through
// a temporary file; an existing file is refused unless replaced. Other names: OpenAI's
// reference batches also hold the sFID statistics as mu_s, sigma_s.
FeatureStats read_fid_stats(const std::string& path, const std::string& mu_name = "mu",
                            const std::string& sigma_name = "sigma");
void write_fid_stats(const std::string& path, const FeatureStats& stats, Overwrite overwrite = Overwrite::kRefuse);

// The provenance of a statistics file alone (not known when it has none).
StatsProvenance read_stats_provenance(const std::string& path);
// Statistics read from `path`, of provenance `found`, set beside features made as
// `expected` says: an InputError naming both sides when they differ in resize or
// weights. Returns a note for the user, empty unless the file has no provenance
// (pytorch-fid's own): then it says what is assumed.
std::string check_provenance(const StatsProvenance& found, const StatsProvenance& expected, const std::string& path);

}  // namespace ddpm::eval
