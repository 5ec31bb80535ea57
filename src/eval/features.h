// Feature vectors (Inception pool features, logits, probabilities): `count` rows of
// `dim` floats, row-major. The statistics (frechet.h, inception_score.h,
// precision_recall.h) take them as a view, so that features can come from memory, a
// file or a network's output without copies.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/npz.h"

namespace ddpm::eval {

struct FeatureRows {
  const float* data = nullptr;
  int64_t count = 0;
  int64_t dim = 0;

  const float* row(int64_t i) const { return data + i * dim; }
  // Rows [begin, end).
  FeatureRows slice(int64_t begin, int64_t end) const { return {row(begin), end - begin, dim}; }
};

// Features held in memory.
struct FeatureMatrix {
  std::vector<float> values;
  int64_t count = 0;
  int64_t dim = 0;

  FeatureRows rows() const { return {values.data(), count, dim}; }
};

// A float32 or float64 array [N, D] of an .npz file, as floats.
FeatureMatrix read_features(const NpzReader& npz, const std::string& name);

// An InputError naming `what` unless every value is finite.
void require_finite(FeatureRows rows, const std::string& what);

}  // namespace ddpm::eval
