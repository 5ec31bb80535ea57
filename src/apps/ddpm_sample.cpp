// ddpm_sample: draws images from a trained model (EMA weights by default).
//   ddpm_sample --run-dir runs/cifar10 --num 64 --out out/samples
//   mpirun -np 8 ddpm_sample --checkpoint ckpt.h5 --num 50000 --batch 256 --no-png --out out/fid
#include <cstdio>

#include "apps/cli.h"
#include "apps/model_options.h"
#include "core/common.h"
#include "dist/world.h"
#include "io/model_source.h"
#include "eval/sample_images.h"

namespace ddpm {
namespace {

int run(World& world, int argc, char** argv) {
  Cli cli("ddpm_sample", "(--checkpoint FILE | --run-dir DIR) --num N --out DIR [options]",
          "Draws N images with the reverse process and writes one PNG per image (DIR/images/), a grid "
          "(DIR/grid.png) and DIR/samples.npz (uint8 NHWC as arr_0, the layout FID tools read). Image i uses "
          "noise keyed by (seed, i), so the result does not depend on --batch or the number of ranks.");
  add_model_options(cli, ConfigOverrides::kDiffusionAndDevice);
  cli.option("num", "N", "images to draw", "64");
  cli.option("batch", "B", "images per forward pass on each rank", "64");
  cli.option("seed", "S", "seed of the sampling noise", "0");
  cli.option("out", "DIR", "output directory");
  cli.option("sampler", "ancestral|ddim", "ancestral: the paper's Algorithm 2 over all T steps; ddim: Song et al.",
             "ancestral");
  cli.option("steps", "K", "DDIM steps (0: all T)", "50");
  cli.option("eta", "E", "DDIM noise (0: deterministic)", "0");
  cli.option("progressive", "K", "also write progressive.png: x0 predicted every K steps (the paper's Fig. 6)", "0");
  cli.flag("no-png", "skip the per-image PNGs (large runs for FID)");
  cli.option("quantize", "truncate|round",
             "floats to bytes: truncate ((x+1)*127.5 clipped, as guided-diffusion's image_sample.py and the reference's "
             "image logging: what published FIDs are computed on) or round to nearest",
             "truncate");
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
  const Quantize quantize = parse_quantize(cli.get("quantize"), "--quantize");

  const ModelSource src = load_model(cli, ConfigOverrides::kDiffusionAndDevice, "sampling");
  eval::SampleJob job;
  job.num = num;
  job.batch = batch;
  job.out_dir = out_dir;
  job.write_pngs = !cli.has("no-png");
  job.quantize = quantize;
  job.sampler.kind = cli.get("sampler");
  job.sampler.steps = static_cast<int>(cli.get_int("steps"));
  job.sampler.eta = cli.get_double("eta");
  job.sampler.seed = static_cast<uint64_t>(cli.get_int("seed"));
  job.sampler.progressive_every = progressive;
  eval::sample_images(world, src, job);
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
