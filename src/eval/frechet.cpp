#include "eval/frechet.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>

#include "core/common.h"

namespace ddpm::eval {
namespace {

using RowMajorFloats = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using RowMajorDoubles = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// add() takes the rows this many at a time: the centred block in double stays small
// (16 MiB at D = 2048) whatever the caller passes.
constexpr int64_t kBlockRows = 1024;

bool all_finite(const std::vector<double>& v) {
  return std::all_of(v.begin(), v.end(), [](double x) { return std::isfinite(x); });
}

void check_consistent(const FeatureStats& s, const char* which) {
  if (s.dim < 1 || s.mu.size() != static_cast<size_t>(s.dim) ||
      s.sigma.size() != static_cast<size_t>(s.dim) * static_cast<size_t>(s.dim)) {
    input_error("feature statistics (", which, "): mu of ", s.mu.size(), " and sigma of ", s.sigma.size(),
                " values for dimension ", s.dim);
  }
  if (!all_finite(s.mu) || !all_finite(s.sigma)) input_error("feature statistics (", which, ") hold NaN or infinity");
}

}  // namespace

FeatureStatsAccumulator::FeatureStatsAccumulator(int64_t dim)
    : dim_(dim), mean_(static_cast<size_t>(dim), 0.0), scatter_(static_cast<size_t>(dim * dim), 0.0) {
  DDPM_CHECK(dim >= 1, "feature dimension ", dim);
}

void FeatureStatsAccumulator::add(FeatureRows rows) {
  if (rows.dim != dim_) input_error("features of dimension ", rows.dim, " given to statistics of dimension ", dim_);
  require_finite(rows, "features");
  for (int64_t begin = 0; begin < rows.count; begin += kBlockRows) {
    add_block(rows.slice(begin, std::min(rows.count, begin + kBlockRows)));
  }
}

void FeatureStatsAccumulator::add_block(FeatureRows rows) {
  const Eigen::Map<const RowMajorFloats> x(rows.data, rows.count, dim_);
  Eigen::MatrixXd centred = x.cast<double>();
  const Eigen::RowVectorXd block_mean = centred.colwise().mean();
  centred.rowwise() -= block_mean;

  Eigen::Map<Eigen::VectorXd> mean(mean_.data(), dim_);
  Eigen::Map<Eigen::MatrixXd> scatter(scatter_.data(), dim_, dim_);
  const double n = static_cast<double>(count_), m = static_cast<double>(rows.count), total = n + m;
  const Eigen::VectorXd delta = block_mean.transpose() - mean;
  // The block's own scatter, then the correction for the two means (Chan et al. 1979).
  scatter.selfadjointView<Eigen::Lower>().rankUpdate(centred.transpose());
  scatter.selfadjointView<Eigen::Lower>().rankUpdate(delta, n * m / total);
  mean += delta * (m / total);
  count_ += rows.count;
}

FeatureStats FeatureStatsAccumulator::stats() const {
  if (count_ < 2) input_error("feature statistics need at least 2 feature vectors (got ", count_, ")");
  FeatureStats s;
  s.dim = dim_;
  s.mu = mean_;
  s.sigma.resize(scatter_.size());
  const Eigen::Map<const Eigen::MatrixXd> scatter(scatter_.data(), dim_, dim_);
  Eigen::Map<RowMajorDoubles> sigma(s.sigma.data(), dim_, dim_);
  sigma = scatter.selfadjointView<Eigen::Lower>();
  sigma /= static_cast<double>(count_ - 1);
  return s;
}

FeatureStats feature_stats(FeatureRows rows) {
  FeatureStatsAccumulator acc(rows.dim);
  acc.add(rows);
  return acc.stats();
}

double frechet_distance(const FeatureStats& a, const FeatureStats& b) {
  check_consistent(a, "first");
  check_consistent(b, "second");
  if (a.dim != b.dim) input_error("feature statistics of dimensions ", a.dim, " and ", b.dim, " cannot be compared");
  const int64_t d = a.dim;
  const Eigen::Map<const Eigen::VectorXd> mu1(a.mu.data(), d), mu2(b.mu.data(), d);
  const Eigen::Map<const RowMajorDoubles> s1(a.sigma.data(), d, d), s2(b.sigma.data(), d, d);

  // S1 = V Λ Vᵀ gives S1^½ = V Λ^½ Vᵀ = R Vᵀ with R = V Λ^½. Then
  // S1^½ S2 S1^½ = V (Rᵀ S2 R) Vᵀ: the same eigenvalues as Rᵀ S2 R, one product fewer.
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig1(s1);
  if (eig1.info() != Eigen::Success) throw Error("frechet_distance: the eigendecomposition of S1 did not converge");
  const Eigen::MatrixXd r = eig1.eigenvectors() * eig1.eigenvalues().cwiseMax(0.0).cwiseSqrt().asDiagonal();
  const Eigen::MatrixXd product = r.transpose() * s2 * r;
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig2(product, Eigen::EigenvaluesOnly);
  if (eig2.info() != Eigen::Success) throw Error("frechet_distance: the eigendecomposition of S1^½ S2 S1^½ did not converge");
  const double trace_sqrt = eig2.eigenvalues().cwiseMax(0.0).cwiseSqrt().sum();
  return (mu1 - mu2).squaredNorm() + s1.trace() + s2.trace() - 2.0 * trace_sqrt;
}

FeatureStats read_fid_stats(const std::string& path, const std::string& mu_name, const std::string& sigma_name) {
  const NpzReader npz(path);
  const NpyArray mu = npz.read_floating(mu_name, 1), sigma = npz.read_floating(sigma_name, 2);
  FeatureStats s;
  s.dim = mu.shape[0];
  if (s.dim < 1 || sigma.shape[0] != s.dim || sigma.shape[1] != s.dim) {
    input_error(path, ": ", sigma_name, " is ", shape_string(sigma.shape), " for ", mu_name, " of ",
                shape_string(mu.shape), " (expected [D, D] for ", mu_name, " of [D], D >= 1)");
  }
  s.mu = mu.to_doubles();
  s.sigma = sigma.to_doubles();
  if (!all_finite(s.mu) || !all_finite(s.sigma)) input_error(path, ": ", mu_name, " or ", sigma_name, " holds NaN or infinity");
  return s;
}

void write_fid_stats(const std::string& path, const FeatureStats& stats, Overwrite overwrite) {
  check_consistent(stats, path.c_str());
  write_npz(path, {{"mu", NpyView::of(stats.mu, {stats.dim})}, {"sigma", NpyView::of(stats.sigma, {stats.dim, stats.dim})}},
            overwrite);
}

}  // namespace ddpm::eval
