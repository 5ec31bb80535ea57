#include "data/stream.h"

#include <numeric>

#include "core/common.h"
#include "core/rng.h"

namespace ddpm::data {
namespace {

uint32_t step_of(int64_t epoch) {
  DDPM_CHECK(epoch >= 0 && epoch <= UINT32_MAX, "epoch ", epoch, " is out of the counter's range");
  return static_cast<uint32_t>(epoch);
}

}  // namespace

std::vector<uint32_t> epoch_permutation(uint64_t seed, int64_t epoch, int64_t count) {
  std::vector<uint32_t> perm;
  epoch_permutation(seed, epoch, count, &perm);
  return perm;
}

void epoch_permutation(uint64_t seed, int64_t epoch, int64_t count, std::vector<uint32_t>* out) {
  DDPM_CHECK(count >= 0 && count <= UINT32_MAX, "dataset of ", count, " images");
  std::vector<uint32_t>& perm = *out;
  perm.resize(static_cast<size_t>(count));
  std::iota(perm.begin(), perm.end(), 0u);
  const u32x2 key = philox_key(seed);
  const uint32_t step = step_of(epoch);
  for (int64_t i = count - 1; i > 0; --i) {
    const u32x4 r = philox4x32_10(philox_counter(Purpose::kPermute, 0, step, static_cast<uint32_t>(i), 0), key);
    // j uniform in [0, i]: the high half of a 64-bit draw times (i + 1); the bias is at
    // most (i + 1) / 2^64.
    const uint64_t bits = (uint64_t{r[1]} << 32) | r[0];
    const uint64_t j = static_cast<uint64_t>((static_cast<unsigned __int128>(bits) * static_cast<uint64_t>(i + 1)) >> 64);
    std::swap(perm[static_cast<size_t>(i)], perm[static_cast<size_t>(j)]);
  }
}

bool flip_at(uint64_t seed, int64_t epoch, int64_t position) {
  DDPM_CHECK(position >= 0 && position <= UINT32_MAX, "position ", position);
  const u32x4 r = philox4x32_10(philox_counter(Purpose::kFlip, 0, step_of(epoch), static_cast<uint32_t>(position), 0),
                                philox_key(seed));
  return (r[0] >> 31) != 0;
}

StreamRange rank_range(int64_t batch_begin, int global_batch, int rank, int world_size) {
  if (global_batch < 1) input_error("the global batch must be positive (got ", global_batch, ")");
  if (world_size < 1 || rank < 0 || rank >= world_size) input_error("rank ", rank, " is not in a world of ", world_size);
  if (global_batch % world_size != 0) {
    input_error("the global batch ", global_batch, " is not divisible by the world size ", world_size);
  }
  const int64_t per_rank = global_batch / world_size;
  return {batch_begin + rank * per_rank, batch_begin + (rank + 1) * per_rank};
}

}  // namespace ddpm::data
