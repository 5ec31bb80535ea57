#include "eval/precision_recall.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "core/common.h"

namespace ddpm::eval {
namespace {

using RowMajorFloats = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

constexpr int64_t kBlockRows = 1024;
// The evaluator's ManifoldEstimator row_batch_size and col_batch_size: the unit in which
// its DistanceBlock falls back to float32.
constexpr int64_t kEvaluatorBatch = 10000;
// Below this, 2·(|u|² + |v|²) bounds every intermediate of a float16 distance, so none
// can overflow float16's 65504.
constexpr double kHalfSafeNormSum = 30000;

// x rounded to the nearest float16 value (ties to even), ±inf beyond its range, in a
// double. Adding and taking away 1.5·2^(52 + s) rounds |x| to a multiple of 2^s, the
// spacing of float16 values in |x|'s binade (2^-24 among the subnormals).
double round_to_half(double x) {
  double a = std::fabs(x);
  if (!(a < 65520.0)) return std::isnan(x) ? x : std::copysign(std::numeric_limits<double>::infinity(), x);
  uint64_t bits;
  std::memcpy(&bits, &a, sizeof bits);
  const int spacing = std::max(static_cast<int>(bits >> 52) - 1023 - 10, -24);
  const uint64_t magic_bits = (static_cast<uint64_t>(1023 + 52 + spacing) << 52) | (uint64_t{1} << 51);
  double magic;
  std::memcpy(&magic, &magic_bits, sizeof magic);
  a = (a + magic) - magic;
  return std::copysign(a, x);
}

// How a block of distances is computed: as the evaluator's float16 DistanceBlock, its
// float32 fallback, or exactly.
enum class Arithmetic { kFloat16, kFloat32, kFloat64 };

// Rows [begin, end) of a feature set in double, as the arithmetic sees them, with their
// squared norms.
struct Block {
  int64_t begin = 0;
  Eigen::MatrixXd x;
  Eigen::VectorXd norms;
};

Block load_block(FeatureRows f, int64_t begin, int64_t end, Arithmetic arithmetic) {
  Block b;
  b.begin = begin;
  b.x = Eigen::Map<const RowMajorFloats>(f.row(begin), end - begin, f.dim).cast<double>();
  if (arithmetic == Arithmetic::kFloat16) {
    b.x = b.x.unaryExpr(&round_to_half);
    // tf.reduce_sum(tf.square(U), 1) in float16: each square rounded, the sum rounded.
    b.norms = b.x.array().square().unaryExpr(&round_to_half).rowwise().sum().unaryExpr(&round_to_half);
  } else {
    b.norms = b.x.rowwise().squaredNorm();
  }
  return b;
}

// d(i, j) = max(|a_i|² − 2 a_i·b_j + |b_j|², 0), the reference's formula, evaluated left
// to right in the arithmetic.
void squared_distances(const Block& a, const Block& b, Arithmetic arithmetic, Eigen::MatrixXd* d) {
  d->noalias() = a.x * b.x.transpose();
  for (int64_t j = 0; j < d->cols(); ++j) {
    for (int64_t i = 0; i < d->rows(); ++i) {
      double& v = (*d)(i, j);
      if (arithmetic == Arithmetic::kFloat16) {
        v = round_to_half(round_to_half(a.norms(i) - 2.0 * round_to_half(v)) + b.norms(j));
      } else {
        v = a.norms(i) - 2.0 * v + b.norms(j);
        if (arithmetic == Arithmetic::kFloat32) v = static_cast<float>(v);
      }
      v = std::max(v, 0.0);
    }
  }
}

// Whether the evaluator's float16 distances of rows [a0, a1) of a and [b0, b1) of b are
// all finite (else it computes the pair of batches in float32).
bool half_distances_finite(FeatureRows a, int64_t a0, int64_t a1, FeatureRows b, int64_t b0, int64_t b1) {
  double largest_a = 0, largest_b = 0;
  for (int64_t i = a0; i < a1; i += kBlockRows) {
    largest_a = std::max(largest_a, load_block(a, i, std::min(a1, i + kBlockRows), Arithmetic::kFloat16).norms.maxCoeff());
  }
  for (int64_t j = b0; j < b1; j += kBlockRows) {
    largest_b = std::max(largest_b, load_block(b, j, std::min(b1, j + kBlockRows), Arithmetic::kFloat16).norms.maxCoeff());
  }
  if (largest_a + largest_b < kHalfSafeNormSum) return true;
  Eigen::MatrixXd d;  // large norms: look at every distance
  for (int64_t i = a0; i < a1; i += kBlockRows) {
    const Block ab = load_block(a, i, std::min(a1, i + kBlockRows), Arithmetic::kFloat16);
    for (int64_t j = b0; j < b1; j += kBlockRows) {
      squared_distances(ab, load_block(b, j, std::min(b1, j + kBlockRows), Arithmetic::kFloat16), Arithmetic::kFloat16,
                        &d);
      if (!d.allFinite()) return false;
    }
  }
  return true;
}

// visit(a_block, b_block, distances) for every pair of blocks of a and b, the distances
// of each pair of the evaluator's batches in its arithmetic. The b blocks are converted
// again for each a block: O(rows·D) against the product's O(rows²·D).
template <typename Visit>
void for_each_block_pair(FeatureRows a, FeatureRows b, DistancePrecision precision, Visit&& visit) {
  Eigen::MatrixXd d;
  for (int64_t a0 = 0; a0 < a.count; a0 += kEvaluatorBatch) {
    const int64_t a1 = std::min(a.count, a0 + kEvaluatorBatch);
    for (int64_t b0 = 0; b0 < b.count; b0 += kEvaluatorBatch) {
      const int64_t b1 = std::min(b.count, b0 + kEvaluatorBatch);
      const Arithmetic arithmetic = precision == DistancePrecision::kFloat64       ? Arithmetic::kFloat64
                                    : half_distances_finite(a, a0, a1, b, b0, b1) ? Arithmetic::kFloat16
                                                                                   : Arithmetic::kFloat32;
      for (int64_t i = a0; i < a1; i += kBlockRows) {
        const Block a_block = load_block(a, i, std::min(a1, i + kBlockRows), arithmetic);
        for (int64_t j = b0; j < b1; j += kBlockRows) {
          const Block b_block = load_block(b, j, std::min(b1, j + kBlockRows), arithmetic);
          squared_distances(a_block, b_block, arithmetic, &d);
          visit(a_block, b_block, d);
        }
      }
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

DistancePrecision parse_distance_precision(const std::string& name, const std::string& what) {
  if (name == "float16") return DistancePrecision::kFloat16;
  if (name == "float64") return DistancePrecision::kFloat64;
  input_error(what, ": unknown distance precision '", name, "' (float16 or float64)");
}

std::vector<double> manifold_radii(FeatureRows features, int k, DistancePrecision precision) {
  check_features(features, k, "features");
  const auto keep = static_cast<size_t>(k) + 1;
  // The k + 1 smallest distances of each row so far, ascending.
  std::vector<double> smallest(static_cast<size_t>(features.count) * keep, std::numeric_limits<double>::infinity());
  for_each_block_pair(features, features, precision, [&](const Block& a, const Block&, const Eigen::MatrixXd& d) {
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

PrecisionRecall precision_recall(FeatureRows reference, FeatureRows samples, int k, DistancePrecision precision) {
  check_features(reference, k, "reference features");
  check_features(samples, k, "sample features");
  if (reference.dim != samples.dim) {
    input_error("precision/recall: reference features of size ", reference.dim, ", samples of size ", samples.dim);
  }
  const std::vector<double> reference_radii = manifold_radii(reference, k, precision);
  const std::vector<double> sample_radii = manifold_radii(samples, k, precision);
  std::vector<char> sample_inside(static_cast<size_t>(samples.count), 0);
  std::vector<char> reference_inside(static_cast<size_t>(reference.count), 0);
  // The evaluator's evaluate_pr: distances from reference rows (u) to sample columns (v).
  for_each_block_pair(reference, samples, precision, [&](const Block& r, const Block& s, const Eigen::MatrixXd& d) {
    for (int64_t j = 0; j < d.cols(); ++j) {
      const auto sample = static_cast<size_t>(s.begin + j);
      for (int64_t i = 0; i < d.rows(); ++i) {
        const auto ref = static_cast<size_t>(r.begin + i);
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
