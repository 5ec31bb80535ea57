#include "eval/features.h"

#include <cmath>

#include "core/common.h"

namespace ddpm::eval {

FeatureMatrix read_features(const NpzReader& npz, const std::string& name) {
  const NpyArray a = npz.read_floating(name, 2);
  FeatureMatrix m;
  m.count = a.shape[0];
  m.dim = a.shape[1];
  if (m.dim == 0) input_error(npz.path(), ": array ", printable_name(name), " has feature vectors of size 0");
  m.values = a.to_floats();
  return m;
}

void require_finite(FeatureRows rows, const std::string& what) {
  for (int64_t i = 0; i < rows.count; ++i) {
    for (int64_t j = 0; j < rows.dim; ++j) {
      if (!std::isfinite(rows.row(i)[j])) input_error(what, ": feature vector ", i, " holds NaN or infinity");
    }
  }
}

}  // namespace ddpm::eval
