// The Inception Score (Salimans et al. 2016) as improved-gan's inception_score/model.py
// computes it: the N predictions are cut into `splits` contiguous parts
// [i·N/splits, (i+1)·N/splits), each part scores exp(mean over its rows of
// KL(p(y|x) ‖ p(y))) with p(y) the part's mean prediction, and the result is the mean
// and the standard deviation (numpy's, ddof 0) of the part scores.
#pragma once

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
// From probabilities [N, classes]: each row non-negative, summing to 1 (within 1e-3).
InceptionScore inception_score_from_probabilities(FeatureRows probabilities, int splits = kInceptionScoreSplits);

}  // namespace ddpm::eval
