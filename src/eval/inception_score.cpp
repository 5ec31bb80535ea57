#include "eval/inception_score.h"

#include <algorithm>
#include <cmath>

#include "core/common.h"

namespace ddpm::eval {
namespace {

constexpr double kProbabilitySumTolerance = 1e-3;

// The part boundaries: `splits` parts [s·N/splits, (s+1)·N/splits) (improved-gan).
std::vector<int64_t> equal_parts(int64_t count, int splits, const char* what) {
  if (splits < 1 || count < splits) {
    input_error("the Inception Score needs at least one prediction per split: ", count, " ", what, " for ", splits,
                " split(s)");
  }
  std::vector<int64_t> bounds;
  for (int64_t s = 0; s <= splits; ++s) bounds.push_back(s * count / splits);
  return bounds;
}

// Parts [i, i + size) for i = 0, size, 2·size, ..., the last one shorter (guided-diffusion).
std::vector<int64_t> parts_of(int64_t count, int64_t size, const char* what) {
  if (size < 1 || count < 1) input_error("the Inception Score needs predictions: ", count, " ", what, " in parts of ", size);
  std::vector<int64_t> bounds;
  for (int64_t b = 0; b < count; b += size) bounds.push_back(b);
  bounds.push_back(count);
  return bounds;
}

// The scores of the parts [bounds[s], bounds[s+1]), with row_probabilities(i, p) filling
// p with row i's p(y|x). Each part is walked twice (its marginal, then the KL terms), so
// nothing of size N is held.
template <typename RowProbabilities>
InceptionScore score_parts(FeatureRows rows, const std::vector<int64_t>& bounds, const char* what,
                           RowProbabilities&& row_probabilities) {
  if (rows.dim < 1) input_error("the Inception Score needs at least one class (", what, " of size 0)");
  require_finite(rows, what);
  const auto classes = static_cast<size_t>(rows.dim);
  std::vector<double> p(classes), log_marginal(classes);
  InceptionScore score;
  const auto splits = static_cast<double>(bounds.size() - 1);
  for (size_t s = 0; s + 1 < bounds.size(); ++s) {
    const int64_t begin = bounds[s], end = bounds[s + 1];
    std::fill(log_marginal.begin(), log_marginal.end(), 0.0);
    for (int64_t i = begin; i < end; ++i) {
      row_probabilities(i, p.data());
      for (size_t c = 0; c < classes; ++c) log_marginal[c] += p[c];
    }
    for (double& m : log_marginal) m = std::log(m / static_cast<double>(end - begin));
    double kl_sum = 0;
    for (int64_t i = begin; i < end; ++i) {
      row_probabilities(i, p.data());
      // p·log p → 0 as p → 0 (numpy would give NaN for a probability of exactly 0).
      for (size_t c = 0; c < classes; ++c) {
        if (p[c] > 0) kl_sum += p[c] * (std::log(p[c]) - log_marginal[c]);
      }
    }
    score.split_scores.push_back(std::exp(kl_sum / static_cast<double>(end - begin)));
  }
  for (const double x : score.split_scores) score.mean += x / splits;
  double variance = 0;
  for (const double x : score.split_scores) variance += (x - score.mean) * (x - score.mean) / splits;
  score.std = std::sqrt(variance);
  return score;
}

// Row i's softmax, in double.
void softmax_row(FeatureRows logits, int64_t i, double* p) {
  const float* l = logits.row(i);
  const double top = *std::max_element(l, l + logits.dim);
  double sum = 0;
  for (int64_t c = 0; c < logits.dim; ++c) sum += p[c] = std::exp(static_cast<double>(l[c]) - top);
  for (int64_t c = 0; c < logits.dim; ++c) p[c] /= sum;
}

}  // namespace

InceptionScore inception_score_from_logits(FeatureRows logits, int splits) {
  return score_parts(logits, equal_parts(logits.count, splits, "logits"), "logits",
                     [&](int64_t i, double* p) { softmax_row(logits, i, p); });
}

InceptionScore inception_score_in_parts_of(FeatureRows logits, int64_t part_size) {
  return score_parts(logits, parts_of(logits.count, part_size, "logits"), "logits",
                     [&](int64_t i, double* p) { softmax_row(logits, i, p); });
}

InceptionScore inception_score_from_probabilities(FeatureRows probabilities, int splits) {
  return score_parts(probabilities, equal_parts(probabilities.count, splits, "probabilities"), "probabilities",
                     [&](int64_t i, double* p) {
    const float* q = probabilities.row(i);
    double sum = 0;
    for (int64_t c = 0; c < probabilities.dim; ++c) {
      if (q[c] < 0) input_error("probabilities: row ", i, " holds a negative value (", q[c], ")");
      sum += p[c] = q[c];
    }
    if (std::abs(sum - 1.0) > kProbabilitySumTolerance) {
      input_error("probabilities: row ", i, " sums to ", sum, ", not 1 (logits? use the logits form)");
    }
  });
}

}  // namespace ddpm::eval
