#include "eval/frechet.h"

#include <cblas.h>
#include <lapacke.h>

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

// The eigenvalues of the symmetric matrix a [n, n] (its lower triangle, column-major),
// ascending, by LAPACK's divide and conquer (dsyevd: several times Eigen's speed at
// n = 2048); with `vectors`, a is replaced by the eigenvectors (columns), else destroyed.
std::vector<double> symmetric_eigenvalues(double* a, int64_t n, bool vectors) {
  std::vector<double> w(static_cast<size_t>(n));
  const lapack_int info = LAPACKE_dsyevd(LAPACK_COL_MAJOR, vectors ? 'V' : 'N', 'L', static_cast<lapack_int>(n), a,
                                         static_cast<lapack_int>(n), w.data());
  if (info != 0) throw Error(cat("frechet_distance: LAPACK dsyevd failed (info ", info, ")"));
  return w;
}

// Rᵀ S2 R (lower triangle meaningful, column-major) for an R with R Rᵀ = S1 (above).
std::vector<double> similar_to_product(const std::vector<double>& s1, const std::vector<double>& s2, int64_t d) {
  const auto n = static_cast<blasint>(d);
  std::vector<double> r = s1;
  if (LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', n, r.data(), n) == 0) {
    std::vector<double> m = s2;  // S2 L, then Lᵀ (S2 L), in place (the upper half of r is not read)
    cblas_dtrmm(CblasColMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, n, n, 1.0, r.data(), n, m.data(), n);
    cblas_dtrmm(CblasColMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit, n, n, 1.0, r.data(), n, m.data(), n);
    return m;
  }
  r = s1;
  const std::vector<double> lambda = symmetric_eigenvalues(r.data(), d, true);  // r: V
  for (int64_t j = 0; j < d; ++j) {
    const double scale = std::sqrt(std::max(lambda[static_cast<size_t>(j)], 0.0));
    for (int64_t i = 0; i < d; ++i) r[static_cast<size_t>(j * d + i)] *= scale;  // column j: R = V Λ^½
  }
  std::vector<double> s2r(static_cast<size_t>(d * d)), m(static_cast<size_t>(d * d));
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, s2.data(), n, r.data(), n, 0.0, s2r.data(), n);
  cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, n, n, n, 1.0, r.data(), n, s2r.data(), n, 0.0, m.data(), n);
  return m;
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

  // tr sqrt(S1^½ S2 S1^½) is the sum of the square roots of the eigenvalues of any
  // symmetric matrix similar to S1 S2: Rᵀ S2 R for any R with R Rᵀ = S1. The Cholesky
  // factor L is the cheapest such R (n³/3 multiply-adds, then two triangular products);
  // where S1 is singular (fewer images than dimensions) it does not exist, and
  // R = V Λ^½ from S1's eigendecomposition (its rounding-negative eigenvalues clamped to
  // 0) takes its place. Symmetric matrices are the same in either storage order, so
  // LAPACK and BLAS take them column-major as they are.
  std::vector<double> product = similar_to_product(a.sigma, b.sigma, d);
  double trace_sqrt = 0;
  for (const double e : symmetric_eigenvalues(product.data(), d, false)) trace_sqrt += std::sqrt(std::max(e, 0.0));
  return (mu1 - mu2).squaredNorm() + s1.trace() + s2.trace() - 2.0 * trace_sqrt;
}

namespace {

constexpr const char* kResizeKey = "inception_resize";
constexpr const char* kWeightsKey = "inception_weights_sha256";
constexpr const char* kImagesKey = "num_images";

StatsProvenance read_provenance(const NpzReader& npz) {
  StatsProvenance p;
  const int present = npz.contains(kResizeKey) + npz.contains(kWeightsKey) + npz.contains(kImagesKey);
  if (present == 0) return p;
  if (present != 3) input_error(npz.path(), ": has part of the provenance (", kResizeKey, ", ", kWeightsKey, ", ", kImagesKey, ")");
  p.resize = npz.read_text(kResizeKey);
  p.weights_sha256 = npz.read_text(kWeightsKey);
  p.images = npz.read_integer(kImagesKey);
  if (p.resize.empty()) input_error(npz.path(), ": ", kResizeKey, " is empty");
  return p;
}

std::u32string wide(const std::string& ascii) { return {ascii.begin(), ascii.end()}; }

}  // namespace

std::string StatsProvenance::describe() const {
  return cat("resize ", resize, ", Inception weights sha256 ", weights_sha256.substr(0, 16),
             weights_sha256.size() > 16 ? "..." : "");
}

StatsProvenance read_stats_provenance(const std::string& path) { return read_provenance(NpzReader(path)); }

std::string check_provenance(const StatsProvenance& p, const StatsProvenance& expected, const std::string& path) {
  if (!p.known()) {
    return cat(path, ": statistics without provenance (pytorch-fid's format): assumed to be made with ",
               expected.describe());
  }
  if (p.resize != expected.resize || p.weights_sha256 != expected.weights_sha256) {
    input_error(path, ": statistics made with ", p.describe(), ", but this measurement uses ", expected.describe(),
                "; measure both sets the same way");
  }
  return "";
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
  s.provenance = read_provenance(npz);
  return s;
}

void write_fid_stats(const std::string& path, const FeatureStats& stats, Overwrite overwrite) {
  check_consistent(stats, path.c_str());
  std::vector<std::pair<std::string, NpyView>> arrays = {{"mu", NpyView::of(stats.mu, {stats.dim})},
                                                         {"sigma", NpyView::of(stats.sigma, {stats.dim, stats.dim})}};
  const StatsProvenance& p = stats.provenance;
  const std::u32string resize = wide(p.resize), weights = wide(p.weights_sha256);
  const std::vector<int64_t> images = {p.images};
  if (p.known()) {
    arrays.insert(arrays.end(), {{kResizeKey, NpyView::of(resize)}, {kWeightsKey, NpyView::of(weights)},
                                 {kImagesKey, NpyView::of(images, {})}});
  }
  write_npz(path, arrays, overwrite);
}

}  // namespace ddpm::eval
