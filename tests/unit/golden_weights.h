// Golden test weights: a deterministic function of (seed, parameter name, element)
// drawn from Philox4x32-10 (Purpose::kTest), shared bit for bit with the Python side
// (tests/reference/philox.py) so the golden file stores no weights.
//   rank >= 2:        v * fan_avg_uniform_limit(shape, 1)   (full scale everywhere, so
//                     conv2 / proj_out / conv_out get gradients worth comparing)
//   1-D ".weight":    1 + v / 8     1-D ".bias":    v / 8
// with v = 2u - 1 and u the top 24 bits of the draw times 2^-24 (exact in float32).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/params.h"

namespace ddpm::testing {

constexpr uint64_t kGoldenSeed = 20200619;

// The golden values of one tensor, row-major in its PyTorch shape.
std::vector<float> golden_tensor(const std::string& name, const std::vector<int64_t>& shape,
                                 uint64_t seed = kGoldenSeed);

// Fills every parameter of `layout` in `params` (layout.size() floats, host memory).
void fill_golden_weights(const ParamLayout& layout, float* params, uint64_t seed = kGoldenSeed);

}  // namespace ddpm::testing
