// The Inception Score (Salimans et al. 2016) as improved-gan's inception_score/model.py
// computes it: the N predictions are cut into `splits` contiguous parts
// [i·N/splits, (i+1)·N/splits), each part scores exp(mean over its rows of
// KL(p(y|x) ‖ p(y))) with p(y) the part's mean prediction, and the result is the mean
// and the standard deviation (numpy's, ddof 0) of the part scores.
#pragma once

#include <cstdint>
#include <vector>

#include "eval/features.h"

namespace ddpm::eval {

struct InceptionScore {
  double mean = 0;
  double std = 0;
  std::vector<double> split_scores;
};

constexpr int kInceptionScoreSplits = 10;

// From the classifier's logits [N, classes]: the softmax is taken in double.
InceptionScore inception_score_from_logits(FeatureRows logits, int splits = kInceptionScoreSplits);
// As guided-diffusion's evaluations/evaluator.py computes it: contiguous parts of
// `part_size` rows (5000 there), the last one shorter, so fewer than 5000 images make
// one part and its standard deviation 0.
constexpr int64_t kEvaluatorScorePartSize = 5000;
InceptionScore inception_score_in_parts_of(FeatureRows logits, int64_t part_size = kEvaluatorScorePartSize);
// From probabilities [N, classes]: each row non-negative, summing to 1 (within 1e-3).
InceptionScore inception_score_from_probabilities(FeatureRows probabilities, int splits = kInceptionScoreSplits);

}  // namespace ddpm::eval
