// ddpm_sample's work, on every rank: image i of `num` is drawn by rank i / ceil(num / W)
// with noise keyed by (seed, i), so the result does not depend on the batch size or the
// number of ranks. Writes one PNG per image (DIR/images/), a grid of the first 256
// (DIR/grid.png), DIR/samples.npz (uint8 NHWC as arr_0) and, when asked, every image's
// x̂₀ at t ≡ 0 (mod K) (DIR/progressive.npz: x0_pred uint8 [S, N, H, W, C] and t [S],
// for FID over time, the paper's Fig. 10) and its figure (DIR/progressive.png, Fig. 6).
// Rank 0 reports progress on stderr.
#pragma once

#include <cstdint>
#include <string>

#include "core/sampler.h"
#include "io/image_out.h"

namespace ddpm {
class World;
struct ModelSource;
}  // namespace ddpm

namespace ddpm::eval {

struct SampleJob {
  int64_t num = 64;        // images in all
  int64_t batch = 64;      // images per forward pass on each rank
  std::string out_dir;
  bool write_pngs = true;  // one PNG per image
  Quantize quantize = Quantize::kTruncate;  // floats to bytes (train/image_out.h)
  SamplerOptions sampler;  // progressive_every > 0 also writes progressive.png
};

// Collective. InputError for a bad sampler option.
void sample_images(World& world, const ModelSource& source, const SampleJob& job);

}  // namespace ddpm::eval
