// ddpm_sample: draws images from a trained model (EMA weights by default).
//   ddpm_sample --run-dir runs/cifar10 --num 64 --out out/samples
//   mpirun -np 8 ddpm_sample --checkpoint ckpt.h5 --num 50000 --batch 256 --no-png --out out/fid
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include "apps/cli.h"
#include "core/backend.h"
#include "core/clock.h"
#include "core/common.h"
#include "core/fs.h"
#include "core/sampler.h"
#include "dist/world.h"
#include "train/image_out.h"
#include "train/model_source.h"

namespace ddpm {
namespace {

int run(World& world, int argc, char** argv) {
  Cli cli("ddpm_sample", "(--checkpoint FILE | --run-dir DIR) --num N --out DIR [options]",
          "Draws N images with the reverse process and writes one PNG per image (DIR/images/), a grid "
          "(DIR/grid.png) and DIR/samples.npz (uint8 NHWC as arr_0, the layout FID tools read). Image i uses "
          "noise keyed by (seed, i), so the result does not depend on --batch or the number of ranks.");
  cli.option("checkpoint", "FILE", "weights file or training checkpoint");
  cli.option("run-dir", "DIR", "use the newest valid checkpoint of a training run");
  cli.option("num", "N", "images to draw", "64");
  cli.option("batch", "B", "images per forward pass on each rank", "64");
  cli.option("seed", "S", "seed of the sampling noise", "0");
  cli.option("out", "DIR", "output directory");
  cli.option("sampler", "ancestral|ddim", "ancestral: the paper's Algorithm 2 over all T steps; ddim: Song et al.",
             "ancestral");
  cli.option("steps", "K", "DDIM steps (0: all T)", "50");
  cli.option("eta", "E", "DDIM noise (0: deterministic)", "0");
  cli.option("weights", "auto|ema|params", "which weights; auto takes ema when the file has it", "auto");
  cli.option("progressive", "K", "also write progressive.png: x0 predicted every K steps (the paper's Fig. 6)", "0");
  cli.repeated("set", "SECTION.KEY=VALUE", "override the diffusion or device config (e.g. device.kind=cuda)");
  cli.flag("no-png", "skip the per-image PNGs (large runs for FID)");
  if (!cli.parse_on_ranks(argc, argv, world.is_root())) return kExitOk;
  const int64_t num = cli.get_int("num"), batch = cli.get_int("batch");
  const int progressive = static_cast<int>(cli.get_int("progressive"));
  if (num < 1 || num > (int64_t{1} << 31)) input_error("--num must be in [1, 2^31]");
  if (batch < 1 || batch > 65536) input_error("--batch must be in [1, 65536]");
  if (progressive < 0) input_error("--progressive must be >= 0");
  if (cli.get_int("steps") < 0) input_error("--steps must be >= 0");
  if ((cli.has("steps") || cli.has("eta")) && cli.get("sampler") == "ancestral") {
    input_error("--steps and --eta apply to --sampler ddim; the ancestral sampler takes all T steps");
  }
  const std::string out_dir = cli.require("out");

  ModelSource src = load_model_source(cli.get("checkpoint"), cli.get("run-dir"), cli.get("weights"));
  for (const std::string& o : cli.all("set")) {
    if (o.rfind("diffusion.", 0) != 0 && o.rfind("device.", 0) != 0) {
      input_error("--set ", o, ": only diffusion.* and device.* keys apply to sampling");
    }
  }
  if (!cli.all("set").empty()) src.config = parse_config(src.config.to_yaml(), src.path, cli.all("set"));
  SamplerOptions so;
  so.kind = cli.get("sampler");
  so.steps = static_cast<int>(cli.get_int("steps"));
  so.eta = cli.get_double("eta");
  so.seed = static_cast<uint64_t>(cli.get_int("seed"));
  so.progressive_every = progressive;

  const int W = world.size();
  const int64_t per_rank = (num + W - 1) / W;
  const int64_t first = std::min<int64_t>(num, world.rank() * per_rank);
  const int64_t mine = std::min<int64_t>(num, first + per_rank) - first;
  auto ops = make_backend(src.config.device, world.local_rank(), 0);
  UNet net(src.config.model);
  const Diffusion diffusion(src.config.diffusion);
  Sampler sampler(net, *ops, diffusion, so);
  float* weights = ops->alloc(net.layout().size());
  ops->upload(weights, src.weights.get(), net.layout().size());
  if (world.is_root()) {
    fs::make_dirs(out_dir);
    std::fprintf(stderr, "ddpm_sample: %s (%s weights%s), %lld images on %d rank(s), %s, %zu steps\n",
                 src.path.c_str(), src.group.c_str(), src.step >= 0 ? cat(", step ", src.step).c_str() : "",
                 static_cast<long long>(num), W, so.kind.c_str(), sampler.timesteps().size());
  }
  world.barrier();
  if (!cli.has("no-png")) fs::make_dirs(fs::join(out_dir, "images"));

  const ModelConfig& mc = src.config.model;
  const int R = mc.resolution, C = mc.in_channels;
  const int64_t img = int64_t{R} * R * C;
  std::vector<uint8_t> my_bytes(static_cast<size_t>(per_rank * img), 0);
  std::vector<float> x, prog, first_prog;
  const bool tty = isatty(STDERR_FILENO);
  const double t0 = now_seconds();
  for (int64_t done = 0; done < mine; done += batch) {
    const int n = static_cast<int>(std::min<int64_t>(batch, mine - done));
    x.resize(static_cast<size_t>(n * img));
    sampler.sample(weights, 1, first + done, n, x.data(), progressive && done == 0 ? &prog : nullptr,
                   [&](int k, int steps) {
                     if (!world.is_root() || (!tty && k != steps)) return;
                     std::fprintf(stderr, "%s  images %lld-%lld of %lld (rank 0): step %d/%d, %.1f s%s",
                                  tty ? "\r\033[K" : "", static_cast<long long>(done),
                                  static_cast<long long>(done + n), static_cast<long long>(mine), k, steps,
                                  now_seconds() - t0, tty ? "" : "\n");
                   });
    if (done == 0 && progressive) first_prog = prog;
    const std::vector<uint8_t> bytes = to_uint8(x.data(), n * img);
    std::copy(bytes.begin(), bytes.end(), my_bytes.begin() + done * img);
    if (!cli.has("no-png")) {
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
  if (world.is_root()) {
    write_npz(fs::join(out_dir, "samples.npz"), all.data(), static_cast<int>(num), R, R, C);
    const int grid_n = static_cast<int>(std::min<int64_t>(num, 256));
    int gh = 0, gw = 0;
    const int cols = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(grid_n))));
    auto grid = make_grid(all.data(), grid_n, R, R, C, cols, 2, &gh, &gw);
    write_png(fs::join(out_dir, "grid.png"), grid.data(), gh, gw, C);
    if (progressive && !first_prog.empty()) {
      // Rows: the first images; columns: x0 predicted along the chain, then the sample.
      const int rows = static_cast<int>(std::min<int64_t>(mine, 8)), snaps = sampler.num_snapshots();
      const int n0 = static_cast<int>(std::min<int64_t>(batch, mine));
      std::vector<uint8_t> tiles;
      for (int r = 0; r < rows; ++r) {
        for (int s = 0; s < snaps; ++s) {
          const auto b = to_uint8(first_prog.data() + (static_cast<int64_t>(s) * n0 + r) * img, img);
          tiles.insert(tiles.end(), b.begin(), b.end());
        }
        tiles.insert(tiles.end(), all.begin() + r * img, all.begin() + (r + 1) * img);
      }
      auto pgrid = make_grid(tiles.data(), rows * (snaps + 1), R, R, C, snaps + 1, 2, &gh, &gw);
      write_png(fs::join(out_dir, "progressive.png"), pgrid.data(), gh, gw, C);
    }
    std::fprintf(stderr, "ddpm_sample: wrote %s/{grid.png,samples.npz%s} in %.1f s (%.2f img/s)\n", out_dir.c_str(),
                 cli.has("no-png") ? "" : ",images/", now_seconds() - t0, num / std::max(now_seconds() - t0, 1e-9));
  }
  ops->release(weights);
  return kExitOk;
}

}  // namespace
}  // namespace ddpm

int main(int argc, char** argv) {
  ddpm::World world(&argc, &argv);
  try {
    return ddpm::run(world, argc, argv);
  } catch (const ddpm::InputError& e) {
    if (world.is_root()) std::fprintf(stderr, "ddpm_sample: error: %s\n", e.what());
    return ddpm::kExitBadInput;
  } catch (const std::exception& e) {
    world.abort(ddpm::kExitInternal, ddpm::cat("ddpm_sample: internal error on rank ", world.rank(), ": ", e.what()));
  }
}
