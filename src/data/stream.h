// The example stream every rank walks (docs/data.md). Stream positions s = 0, 1, 2, ...
// belong to epoch e = s / D at position p = s % D (D images) and show image perm_e[p],
// where perm_e is a Fisher-Yates shuffle keyed by (seed, kPermute, e). Global batch b
// covers positions [b*B, (b+1)*B); rank r of W takes [b*B + r*B/W, b*B + (r+1)*B/W).
// The flip of position s is drawn from (seed, kFlip, e, p). Nothing depends on W, so
// the union of the rank slices is the same global batch for any world size.
#pragma once

#include <cstdint>
#include <vector>

namespace ddpm::data {

// A uniformly random permutation of 0..count-1 for this epoch (count < 2^32).
std::vector<uint32_t> epoch_permutation(uint64_t seed, int64_t epoch, int64_t count);
// The same into `perm` (resized to count): the loader reuses one vector per epoch slot.
void epoch_permutation(uint64_t seed, int64_t epoch, int64_t count, std::vector<uint32_t>* perm);

// Whether the example at (epoch, position) is mirrored left-right (probability 1/2).
bool flip_at(uint64_t seed, int64_t epoch, int64_t position);

struct StreamRange {
  int64_t begin = 0, end = 0;  // stream positions [begin, end)
};
// Rank `rank`'s part of the global batch that starts at stream position batch_begin.
// InputError unless world_size divides global_batch.
StreamRange rank_range(int64_t batch_begin, int global_batch, int rank, int world_size);

}  // namespace ddpm::data
