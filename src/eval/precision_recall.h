// Improved precision and recall (Kynkäänniemi et al. 2019) as OpenAI's guided-diffusion
// evaluations/evaluator.py computes them (ManifoldEstimator, nhood_sizes (3,)):
//  - distances are squared Euclidean, max(|u|² − 2u·v + |v|², 0);
//  - a point's radius is the (k+1)-th smallest distance from it to every point of its
//    own set, itself included (np.partition at k): with distinct points, the distance
//    to its k-th nearest neighbour;
//  - precision: the fraction of samples within distance ≤ radius of some reference
//    point; recall: the fraction of reference points within distance ≤ radius of some
//    sample.
// The evaluator's DistanceBlock computes the distances in float16: the features rounded
// to float16, each square and the dot products summed in float32 (as TF does on a GPU)
// and rounded to float16, then |u|² − 2u·v and + |v|² each rounded to float16; a block of
// 10000 × 10000 pairs (its row and column batch) that overflows float16 anywhere is
// computed in float32 instead. With squared norms in the hundreds that rounding is
// ~0.25 absolute, so points near a radius flip: DistancePrecision::kFloat16, the
// default, reproduces it (the dot products summed exactly, then rounded: what float32
// sums round to but in rare near-ties), kFloat64 computes the exact distances.
// Distances are computed in blocks of 1024 × 1024 rows, so memory stays O((N1 + N2)·k).
#pragma once

#include <string>
#include <vector>

#include "eval/features.h"

namespace ddpm::eval {

constexpr int kManifoldNeighbours = 3;

enum class DistancePrecision { kFloat16, kFloat64 };
// "float16" or "float64"; an InputError naming `what` otherwise.
DistancePrecision parse_distance_precision(const std::string& name, const std::string& what);

struct PrecisionRecall {
  double precision = 0;
  double recall = 0;
};

// Each row's radius as above; needs more than k rows.
std::vector<double> manifold_radii(FeatureRows features, int k = kManifoldNeighbours,
                                   DistancePrecision precision = DistancePrecision::kFloat16);

PrecisionRecall precision_recall(FeatureRows reference, FeatureRows samples, int k = kManifoldNeighbours,
                                 DistancePrecision precision = DistancePrecision::kFloat16);

}  // namespace ddpm::eval
