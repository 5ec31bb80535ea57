#include "eval/sample_images.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "core/backend.h"
#include "core/buffer.h"
#include "core/clock.h"
#include "core/common.h"
#include "core/fs.h"
#include "dist/world.h"
#include "io/npz.h"
#include "io/image_out.h"
#include "io/model_source.h"

namespace ddpm::eval {
namespace {

// Rows: the first images; columns: x̂₀ predicted along the chain, then the sample.
// snapshots: [num_snapshots, num, img] bytes; samples: [num, img] bytes.
void write_progressive_png(const std::string& path, const std::vector<uint8_t>& snapshots, int num_snapshots,
                           int64_t num, const uint8_t* samples, int rows, int R, int C) {
  const int64_t img = int64_t{R} * R * C;
  std::vector<uint8_t> tiles;
  for (int r = 0; r < rows; ++r) {
    for (int s = 0; s < num_snapshots; ++s) {
      const uint8_t* b = snapshots.data() + (s * num + r) * img;
      tiles.insert(tiles.end(), b, b + img);
    }
    tiles.insert(tiles.end(), samples + r * img, samples + (r + 1) * img);
  }
  int gh = 0, gw = 0;
  const auto grid = make_grid(tiles.data(), rows * (num_snapshots + 1), R, R, C, num_snapshots + 1, 2, &gh, &gw);
  write_png(path, grid.data(), gh, gw, C);
}

}  // namespace

void sample_images(World& world, const ModelSource& source, const SampleJob& job) {
  const int64_t num = job.num, batch = job.batch;
  const int progressive = job.sampler.progressive_every;
  const int W = world.size();
  const int64_t per_rank = (num + W - 1) / W;
  const int64_t first = std::min<int64_t>(num, world.rank() * per_rank);
  const int64_t mine = std::min<int64_t>(num, first + per_rank) - first;
  auto ops = make_backend(source.config.device, world.local_rank(), 0);
  UNet net(source.config.model);
  const Diffusion diffusion(source.config.diffusion);
  Sampler sampler(net, *ops, diffusion, job.sampler);
  ParamBuffer weights(*ops, net.layout().size());
  weights.load(source.weights.get());
  const std::string& out_dir = job.out_dir;
  if (world.is_root()) {
    fs::make_dirs(out_dir);
    std::fprintf(stderr, "ddpm_sample: %s (%s weights%s), %lld images on %d rank(s), %s, %zu steps\n",
                 source.path.c_str(), source.group.c_str(),
                 source.step >= 0 ? cat(", step ", source.step).c_str() : "", static_cast<long long>(num), W,
                 job.sampler.kind.c_str(), sampler.timesteps().size());
  }
  world.barrier();
  if (job.write_pngs) fs::make_dirs(fs::join(out_dir, "images"));

  const ModelConfig& mc = source.config.model;
  const int R = mc.resolution, C = mc.in_channels;
  const int64_t img = mc.values_per_image();
  std::vector<uint8_t> my_bytes(static_cast<size_t>(per_rank * img), 0);
  // x̂₀ snapshots of this rank's images as bytes, [S, per_rank, img] (progressive.npz).
  const int S = progressive ? sampler.num_snapshots() : 0;
  std::vector<uint8_t> my_snapshots(static_cast<size_t>(S * per_rank * img), 0);
  std::vector<float> x, prog;
  const bool tty = isatty(STDERR_FILENO);
  const double t0 = now_seconds();
  for (int64_t done = 0; done < mine; done += batch) {
    const int n = static_cast<int>(std::min<int64_t>(batch, mine - done));
    x.resize(static_cast<size_t>(n * img));
    sampler.sample(weights, first + done, n, x.data(), progressive ? &prog : nullptr,
                   [&](int k, int steps) {
                     if (!world.is_root() || (!tty && k != steps)) return;
                     std::fprintf(stderr, "%s  images %lld-%lld of %lld (rank 0): step %d/%d, %.1f s%s",
                                  tty ? "\r\033[K" : "", static_cast<long long>(done),
                                  static_cast<long long>(done + n), static_cast<long long>(mine), k, steps,
                                  now_seconds() - t0, tty ? "" : "\n");
                   });
    for (int snap = 0; snap < S; ++snap) {
      const std::vector<uint8_t> b = to_uint8(prog.data() + static_cast<int64_t>(snap) * n * img, n * img, job.quantize);
      std::copy(b.begin(), b.end(), my_snapshots.begin() + (snap * per_rank + done) * img);
    }
    const std::vector<uint8_t> bytes = to_uint8(x.data(), n * img, job.quantize);
    std::copy(bytes.begin(), bytes.end(), my_bytes.begin() + done * img);
    if (job.write_pngs) {
      for (int i = 0; i < n; ++i) {
        char name[32];
        std::snprintf(name, sizeof(name), "%06lld.png", static_cast<long long>(first + done + i));
        write_png(fs::join(fs::join(out_dir, "images"), name), bytes.data() + i * img, R, R, C);
      }
    }
  }
  if (world.is_root() && tty) std::fprintf(stderr, "\n");
  std::vector<uint8_t> all(world.is_root() ? static_cast<size_t>(per_rank * W * img) : 0);
  world.gather(all.data(), my_bytes.data(), per_rank * img);
  std::vector<uint8_t> gathered(world.is_root() ? static_cast<size_t>(S * per_rank * W * img) : 0);
  if (S > 0) world.gather(gathered.data(), my_snapshots.data(), S * per_rank * img);
  if (!world.is_root()) return;
  write_npz(fs::join(out_dir, "samples.npz"), all.data(), static_cast<int>(num), R, R, C);
  write_grid_png(fs::join(out_dir, "grid.png"), all.data(), static_cast<int>(std::min<int64_t>(num, 256)), R, R, C);
  if (S > 0) {
    // [rank][S][per_rank] as gathered -> [S][num], the images in order.
    std::vector<uint8_t> snapshots(static_cast<size_t>(S * num * img));
    for (int64_t i = 0; i < num; ++i) {
      const int64_t rank = i / per_rank, local = i % per_rank;
      for (int snap = 0; snap < S; ++snap) {
        const uint8_t* from = gathered.data() + ((rank * S + snap) * per_rank + local) * img;
        std::copy(from, from + img, snapshots.begin() + (snap * num + i) * img);
      }
    }
    std::vector<int64_t> t;
    for (int ts : sampler.snapshot_timesteps()) t.push_back(ts);
    write_npz(fs::join(out_dir, "progressive.npz"),
                    {{"x0_pred", NpyView{NpyDType::kUInt8, {S, num, R, R, C}, snapshots.data()}},
                     {"t", NpyView{NpyDType::kInt64, {S}, t.data()}}},
                    Overwrite::kReplace);
    write_progressive_png(fs::join(out_dir, "progressive.png"), snapshots, S, num, all.data(),
                          static_cast<int>(std::min<int64_t>(num, 8)), R, C);
  }
  std::fprintf(stderr, "ddpm_sample: wrote %s/{grid.png,samples.npz%s%s} in %.1f s (%.2f img/s)\n",
               out_dir.c_str(), job.write_pngs ? ",images/" : "", S > 0 ? ",progressive.npz,progressive.png" : "", now_seconds() - t0, num / std::max(now_seconds() - t0, 1e-9));
}

}  // namespace ddpm::eval
