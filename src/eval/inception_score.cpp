#include "eval/inception_score.h"

#include <algorithm>
#include <cmath>

#include "core/common.h"

namespace ddpm::eval {
namespace {

constexpr double kProbabilitySumTolerance = 1e-3;

// The scores of the splits, with row_probabilities(i, p) filling p with row i's
// p(y|x). Each part is walked twice (its marginal, then the KL terms), so nothing of
// size N is held.
template <typename RowProbabilities>
InceptionScore score_splits(FeatureRows rows, int splits, const char* what, RowProbabilities&& row_probabilities) {
  if (splits < 1 || rows.count < splits) {
    input_error("the Inception Score needs at least one prediction per split: ", rows.count, " ", what, " for ",
                splits, " split(s)");
  }
  if (rows.dim < 1) input_error("the Inception Score needs at least one class (", what, " of size 0)");
  require_finite(rows, what);
  const auto classes = static_cast<size_t>(rows.dim);
  std::vector<double> p(classes), log_marginal(classes);
  InceptionScore score;
  for (int64_t s = 0; s < splits; ++s) {
    const int64_t begin = s * rows.count / splits, end = (s + 1) * rows.count / splits;
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

}  // namespace

InceptionScore inception_score_from_logits(FeatureRows logits, int splits) {
  return score_splits(logits, splits, "logits", [&](int64_t i, double* p) {
    const float* l = logits.row(i);
    const double top = *std::max_element(l, l + logits.dim);
    double sum = 0;
    for (int64_t c = 0; c < logits.dim; ++c) sum += p[c] = std::exp(static_cast<double>(l[c]) - top);
    for (int64_t c = 0; c < logits.dim; ++c) p[c] /= sum;
  });
}

InceptionScore inception_score_from_probabilities(FeatureRows probabilities, int splits) {
  return score_splits(probabilities, splits, "probabilities", [&](int64_t i, double* p) {
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
