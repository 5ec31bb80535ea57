#include "eval/precision_recall.h"

#include <Eigen/Dense>
#include <algorithm>
#include <limits>

#include "core/common.h"

namespace ddpm::eval {
namespace {

using RowMajorFloats = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

constexpr int64_t kBlockRows = 1024;

// Rows [begin, begin + kBlockRows) of a feature set in double, with their squared norms.
struct Block {
  int64_t begin = 0;
  Eigen::MatrixXd x;
  Eigen::VectorXd norms;
};

Block load_block(FeatureRows f, int64_t begin) {
  const int64_t end = std::min(f.count, begin + kBlockRows);
  Block b;
  b.begin = begin;
  b.x = Eigen::Map<const RowMajorFloats>(f.row(begin), end - begin, f.dim).cast<double>();
  b.norms = b.x.rowwise().squaredNorm();
  return b;
}

// d(i, j) = max(|a_i|² − 2 a_i·b_j + |b_j|², 0), the reference's formula.
void squared_distances(const Block& a, const Block& b, Eigen::MatrixXd* d) {
  d->noalias() = -2.0 * a.x * b.x.transpose();
  d->colwise() += a.norms;
  d->rowwise() += b.norms.transpose();
  *d = d->cwiseMax(0.0);
}

// visit(a_block, b_block, distances) for every pair of blocks of a and b. The b blocks
// are converted again for each a block: O(rows·D) against the product's O(rows²·D).
template <typename Visit>
void for_each_block_pair(FeatureRows a, FeatureRows b, Visit&& visit) {
  Eigen::MatrixXd d;
  for (int64_t i = 0; i < a.count; i += kBlockRows) {
    const Block a_block = load_block(a, i);
    for (int64_t j = 0; j < b.count; j += kBlockRows) {
      const Block b_block = load_block(b, j);
      squared_distances(a_block, b_block, &d);
      visit(a_block, b_block, d);
    }
  }
}

void check_features(FeatureRows f, int k, const char* what) {
  if (k < 1) input_error("precision/recall: k = ", k, " nearest neighbours (at least 1)");
  if (f.dim < 1 || f.count <= k) {
    input_error(what, ": ", f.count, " feature vectors of size ", f.dim, "; radii of the k = ", k,
                " nearest neighbours need at least ", k + 1);
  }
  require_finite(f, what);
}

}  // namespace

std::vector<double> manifold_radii(FeatureRows features, int k) {
  check_features(features, k, "features");
  const auto keep = static_cast<size_t>(k) + 1;
  // The k + 1 smallest distances of each row so far, ascending.
  std::vector<double> smallest(static_cast<size_t>(features.count) * keep, std::numeric_limits<double>::infinity());
  for_each_block_pair(features, features, [&](const Block& a, const Block&, const Eigen::MatrixXd& d) {
    for (int64_t j = 0; j < d.cols(); ++j) {
      for (int64_t i = 0; i < d.rows(); ++i) {
        double* s = &smallest[static_cast<size_t>(a.begin + i) * keep];
        const double v = d(i, j);
        if (v >= s[keep - 1]) continue;
        size_t pos = keep - 1;
        for (; pos > 0 && s[pos - 1] > v; --pos) s[pos] = s[pos - 1];
        s[pos] = v;
      }
    }
  });
  std::vector<double> radii(static_cast<size_t>(features.count));
  for (size_t i = 0; i < radii.size(); ++i) radii[i] = smallest[i * keep + keep - 1];
  return radii;
}

PrecisionRecall precision_recall(FeatureRows reference, FeatureRows samples, int k) {
  check_features(reference, k, "reference features");
  check_features(samples, k, "sample features");
  if (reference.dim != samples.dim) {
    input_error("precision/recall: reference features of size ", reference.dim, ", samples of size ", samples.dim);
  }
  const std::vector<double> reference_radii = manifold_radii(reference, k), sample_radii = manifold_radii(samples, k);
  std::vector<char> sample_inside(static_cast<size_t>(samples.count), 0);
  std::vector<char> reference_inside(static_cast<size_t>(reference.count), 0);
  for_each_block_pair(samples, reference, [&](const Block& s, const Block& r, const Eigen::MatrixXd& d) {
    for (int64_t j = 0; j < d.cols(); ++j) {
      const auto ref = static_cast<size_t>(r.begin + j);
      for (int64_t i = 0; i < d.rows(); ++i) {
        const auto sample = static_cast<size_t>(s.begin + i);
        if (d(i, j) <= reference_radii[ref]) sample_inside[sample] = 1;
        if (d(i, j) <= sample_radii[sample]) reference_inside[ref] = 1;
      }
    }
  });
  PrecisionRecall pr;
  pr.precision = static_cast<double>(std::count(sample_inside.begin(), sample_inside.end(), 1)) / samples.count;
  pr.recall = static_cast<double>(std::count(reference_inside.begin(), reference_inside.end(), 1)) / reference.count;
  return pr;
}

}  // namespace ddpm::eval
