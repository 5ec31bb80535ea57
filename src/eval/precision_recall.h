// Improved precision and recall (Kynkäänniemi et al. 2019) as OpenAI's guided-diffusion
// evaluations/evaluator.py computes them (ManifoldEstimator, nhood_sizes (3,)):
//  - distances are squared Euclidean, max(|u|² − 2u·v + |v|², 0);
//  - a point's radius is the (k+1)-th smallest distance from it to every point of its
//    own set, itself included (np.partition at k): with distinct points, the distance
//    to its k-th nearest neighbour;
//  - precision: the fraction of samples within distance ≤ radius of some reference
//    point; recall: the fraction of reference points within distance ≤ radius of some
//    sample.
// The reference evaluates the distances in float16 (float32 where float16 overflows);
// here they are in double, which can only differ at ties with a radius. Distances are
// computed in blocks of 1024 × 1024 rows, so memory stays O((N1 + N2)·k).
#pragma once

#include <vector>

#include "eval/features.h"

namespace ddpm::eval {

constexpr int kManifoldNeighbours = 3;

struct PrecisionRecall {
  double precision = 0;
  double recall = 0;
};

// Each row's radius as above; needs more than k rows.
std::vector<double> manifold_radii(FeatureRows features, int k = kManifoldNeighbours);

PrecisionRecall precision_recall(FeatureRows reference, FeatureRows samples, int k = kManifoldNeighbours);

}  // namespace ddpm::eval
