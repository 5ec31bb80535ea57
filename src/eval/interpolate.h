// The paper's interpolation (Sec. 4.4, Fig. 8): two source images are encoded by the
// forward process to x_t and x'_t (q-sample noise keyed by seed, pair and side), their
// latents mixed linearly, x̄_t = (1 - λ) x_t + λ x'_t, and each mix decoded by the
// reverse process from t. The reverse noise is the same for every λ of a pair (keyed by
// seed, pair and step), so λ = 0 and λ = 1 are reconstructions of the two sources.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ddpm {
struct ModelSource;
}  // namespace ddpm

namespace ddpm::eval {

struct InterpolationJob {
  std::string data_dir;                              // a prepared dataset
  std::vector<std::pair<int64_t, int64_t>> pairs;    // image indices in it
  int t = 500;                                       // 0-based timestep of the latents
  int lambdas = 9;                                   // λ = 0, 1/(L-1), ..., 1
  uint64_t seed = 0;
  std::string out_dir;                               // pair_I_J.png per pair
};

// One process. Each pair's PNG is one row: the source, the L decoded mixes, the other
// source. InputError for an index outside the dataset or a t outside [0, T).
void interpolate(const ModelSource& source, const InterpolationJob& job);

// "3:7,0:12" -> {{3, 7}, {0, 12}}; InputError naming the text otherwise.
std::vector<std::pair<int64_t, int64_t>> parse_pairs(const std::string& text);

}  // namespace ddpm::eval
