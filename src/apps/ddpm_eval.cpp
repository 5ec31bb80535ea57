// ddpm_eval: inspect and evaluate models.
//   ddpm_eval info (--config FILE | --checkpoint FILE)
//   ddpm_eval eps --checkpoint FILE --in IN.h5 --out OUT.h5
//   [mpirun ...] ddpm_eval bpd --checkpoint FILE --data DIR --out bpd.h5
//   ddpm_eval rate-distortion bpd.h5 --out DIR
//   ddpm_eval interpolate --checkpoint FILE --data DIR --pairs 0:1,2:3 --out DIR
//   ddpm_eval fid A B   |   ddpm_eval fid --save-stats IN OUT.npz   |   ddpm_eval is SAMPLES
//   ddpm_eval evaluate REF SAMPLES
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <cstdio>
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "apps/cli.h"
#include "apps/model_options.h"
#include "core/backend.h"
#include "core/buffer.h"
#include "core/common.h"
#include "core/fs.h"
#include "core/h5.h"
#include "core/ops.h"
#include "core/unet.h"
#include "io/weights_io.h"
#include "dist/world.h"
#include "eval/bpd.h"
#include "eval/fid.h"
#include "eval/interpolate.h"
#include "eval/model_outputs.h"
#include "eval/precision_recall.h"
#include "eval/rate_distortion.h"
#include "io/model_source.h"

namespace ddpm {
namespace {

constexpr const char* kUsage =
    "usage: ddpm_eval COMMAND [options]\n\n"
    "commands:\n"
    "  info    parameter count, tensor count and forward GMACs of a model\n"
    "  eps     the model's epsilon prediction for given x and t (to check a converted checkpoint)\n"
    "  bpd     the variational bound in bits/dim per image of a dataset (the paper's NLL; runs under mpirun)\n"
    "  rate-distortion  the paper's Table 4 and Fig. 5 from bpd's output\n"
    "  interpolate      the paper's Fig. 8: source images mixed in latent space at t and decoded\n"
    "  fid     the Frechet Inception Distance between two sets of images (or their statistics)\n"
    "  is      the Inception Score of a set of images\n"
    "  evaluate         IS, FID, sFID, precision and recall as OpenAI's guided-diffusion evaluator computes them\n\n"
    "Run 'ddpm_eval COMMAND --help' for the options of a command.\n";

int cmd_info(int argc, char** argv) {
  Cli cli("ddpm_eval info", "(--config FILE | --checkpoint FILE)",
          "Prints the size of the model described by a YAML config (its model: section) or recorded in a weights "
          "file or checkpoint.");
  cli.option("config", "FILE", "YAML config with a model: section");
  cli.option("checkpoint", "FILE", "weights file or training checkpoint (HDF5)");
  cli.parse(argc, argv, 2);
  if (cli.has("config") == cli.has("checkpoint")) input_error("give exactly one of --config and --checkpoint");
  ModelConfig model;
  std::string source;
  if (cli.has("config")) {
    source = cli.get("config");
    if (!fs::exists(source)) input_error(source, ": no such file");
    model = ModelConfig::from_yaml_text(fs::read_text(source), source);
  } else {
    source = cli.get("checkpoint");
    model = read_model_config(h5::File::open_read(source));
  }
  UNet net(model);
  std::printf("model: %s\n", source.c_str());
  std::printf("resolution: %d\nch: %d\nch_mult: [", model.resolution, model.ch);
  for (size_t i = 0; i < model.ch_mult.size(); ++i) std::printf("%s%d", i ? ", " : "", model.ch_mult[i]);
  std::printf("]\nparameters: %lld\ntensors: %zu\nforward GMACs per image: %.3f\n",
              static_cast<long long>(net.layout().num_parameters()), net.layout().params().size(),
              static_cast<double>(net.macs_per_image()) * 1e-9);
  return kExitOk;
}

int cmd_eps(int argc, char** argv) {
  Cli cli("ddpm_eval eps", "(--checkpoint FILE | --run-dir DIR) --in IN.h5 --out OUT.h5 [options]",
          "Reads x (float32 [N,C,H,W]) and t (int32 or int64 [N]) from IN.h5 and writes the model's epsilon "
          "prediction as eps (float32 [N,C,H,W], dropout off) to OUT.h5.");
  add_model_options(cli, ConfigOverrides::kNone);
  cli.option("in", "FILE", "HDF5 input with datasets x and t");
  cli.option("out", "FILE", "HDF5 output (written atomically)");
  cli.option("batch", "B", "images per forward pass", "16");
  cli.option("device", "cpu|cuda", "backend (cuda: the first GPU)", "cpu");
  cli.option("threads", "T", "CPU threads (0: all cores)", "0");
  cli.option("precision", "auto|fp32|tf32|bf16",
             "how convolutions and matrix products compute; auto: the checkpoint's device.precision (tf32 is fp32 "
             "on the CPU)",
             "auto");
  cli.parse(argc, argv, 2);
  const std::string in_path = cli.require("in"), out_path = cli.require("out");
  const int64_t batch = cli.get_int("batch");
  if (batch < 1 || batch > 4096) input_error("--batch must be in [1, 4096]");
  const ModelSource src = load_model(cli, ConfigOverrides::kNone, "eps");
  DeviceConfig device;
  device.kind = cli.get("device");
  device.threads = static_cast<int>(cli.get_int("threads"));
  device.precision = cli.get("precision") == "auto" ? src.config.device.precision : cli.get("precision");
  if (device.kind == "cpu" && device.precision == "tf32") device.precision = "fp32";
  device.validate("--device/--precision");

  const ModelConfig& model = src.config.model;
  const h5::File in = h5::File::open_read(in_path);
  const h5::DatasetInfo xi = in.info("x"), ti = in.info("t");
  const int R = model.resolution, C = model.in_channels;
  if (xi.dtype != h5::DType::kFloat32) in.fail(cat("x has dtype ", h5::dtype_name(xi.dtype), ", expected float32"));
  if (xi.shape.size() != 4 || xi.shape[1] != C || xi.shape[2] != R || xi.shape[3] != R) {
    in.fail(cat("x has shape ", shape_to_string(xi.shape), ", expected [N, ", C, ", ", R, ", ", R, "]"));
  }
  const int64_t N = xi.shape[0];
  if (ti.shape != std::vector<int64_t>{N}) in.fail(cat("t has shape ", shape_to_string(ti.shape), ", expected [", N, "]"));
  std::vector<float> x(static_cast<size_t>(N * model.values_per_image()));
  std::vector<int64_t> t(static_cast<size_t>(N));
  in.read_f32("x", x.data(), static_cast<int64_t>(x.size()));
  in.read_i64("t", t.data(), N);
  for (int64_t i = 0; i < N; ++i) {
    if (t[i] < 0 || t[i] > 1000000) in.fail(cat("t[", i, "] = ", t[i], " is out of range"));
  }
  const std::unique_ptr<Ops> ops = make_backend(device, 0, device.threads);
  std::fprintf(stderr, "ddpm_eval: %s weights '%s', %lld images, %s %s\n", src.path.c_str(), src.group.c_str(),
               static_cast<long long>(N), ops->name(), precision_name(ops->precision()));
  const std::vector<float> eps = eval::model_outputs(*ops, src, x, t, batch);
  fs::write_atomically(out_path, [&](const std::string& tmp) {
    h5::File out = h5::File::create(tmp);
    out.write_f32("eps", eps.data(), {N, model.out_ch, R, R});
    out.close();
  });
  return kExitOk;
}

int bpd(World& world, int argc, char** argv) {
  Cli cli("ddpm_eval bpd", "(--checkpoint FILE | --run-dir DIR) --data DIR --out bpd.h5 [options]",
          "The variational bound of each of the first N images of a prepared dataset (in its order, unflipped), as "
          "the reference calc_bpd_loop computes it: every t from a fresh q-sample, x0 clipped, the KL terms, the "
          "discretised decoder at t = 0 and the prior term. Writes total_bpd [N], prior_bpd [N], terms_bpd [N,T] "
          "and mse [N,T] (float64) and prints the mean in bits/dim. Under mpirun the images are split across the "
          "ranks; the noise is keyed by (seed, image, t), so neither the rank count nor the batch size changes the "
          "result. It costs T forward passes per image: see docs/evaluation.md for the times.");
  add_model_options(cli, ConfigOverrides::kDiffusionAndDevice);
  cli.option("data", "DIR", "prepared dataset (ddpm_prepare), e.g. the CIFAR10 test split");
  cli.option("num", "N", "images from the start of the dataset (0: all)", "0");
  cli.option("batch", "B", "images per forward pass on each rank", "16");
  cli.option("seed", "S", "seed of the q-sample noise", "0");
  cli.option("out", "FILE", "HDF5 output (written atomically; an existing file is not replaced)");
  if (!cli.parse_on_ranks(argc, argv, world.is_root(), 2)) return kExitOk;
  eval::BpdJob job;
  job.data_dir = cli.require("data");
  job.out_path = cli.require("out");
  job.num = cli.get_int("num");
  job.batch = cli.get_int("batch");
  job.seed = static_cast<uint64_t>(cli.get_int("seed"));
  if (job.num < 0) input_error("--num must be >= 0");
  // Refused before days of compute, not after.
  if (fs::exists(job.out_path)) input_error(job.out_path, ": exists; give another --out or remove it");
  const ModelSource src = load_model(cli, ConfigOverrides::kDiffusionAndDevice, "the bound");
  const eval::BpdSummary s = eval::evaluate_bpd(world, src, job);
  if (world.is_root()) {
    std::printf("%lld images: L_0 (decoder) %.6f, L_1..L_T-1 (KL) %.6f, L_T (prior) %.6f\n",
                static_cast<long long>(s.images), s.decoder, s.kl, s.prior);
    std::printf("bits/dim: %.6f \u00b1 %.6f\n", s.total, s.total_stderr);
  }
  return kExitOk;
}

// Collective commands: every rank runs them; a bad input, met by all ranks alike or
// agreed on (evaluate_bpd), is printed once.
int cmd_bpd(int argc, char** argv) {
  World world(&argc, &argv);
  try {
    return bpd(world, argc, argv);
  } catch (const InputError& e) {
    if (world.is_root()) std::fprintf(stderr, "ddpm_eval: error: %s\n", e.what());
    return kExitBadInput;
  } catch (const std::exception& e) {
    world.abort(kExitInternal, cat("ddpm_eval: internal error on rank ", world.rank(), ": ", e.what()));
  }
}

// Runs /usr/bin/python3 SCRIPT ARGS... with its stderr silenced (the caller reports a
// failure in its own one line) and waits; false when it could not run or failed.
bool run_python(const std::string& script, const std::vector<std::string>& args) {
  std::vector<std::string> words{"/usr/bin/python3", script};
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return false;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return false;
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int cmd_rate_distortion(int argc, char** argv) {
  Cli cli("ddpm_eval rate-distortion", "BPD.h5 --out DIR",
          "The paper's progressive lossy compression (Table 4, Fig. 5) from the terms `ddpm_eval bpd` wrote: the "
          "rate after each reverse step (the prior, then one KL term per step, bits/dim, mean over images) and the "
          "distortion of x0 predicted there (RMSE on the [0, 255] scale: the mean of each image's and the RMSE of "
          "the mean). Writes DIR/rate_distortion.csv (every t), DIR/table4.csv (the paper's rows) and "
          "DIR/rate_distortion.png (Fig. 5, tools/plot_rate_distortion.py with python3-matplotlib).");
  cli.option("out", "DIR", "output directory");
  cli.flag("no-plot", "CSV files only");
  cli.parse(argc, argv, 2);
  if (cli.positional().size() != 1) input_error("give exactly one bpd.h5 (see --help)");
  const std::string dir = cli.require("out");
  const eval::RateDistortion rd = eval::rate_distortion(cli.positional()[0]);
  eval::write_rate_distortion_csv(rd, dir);
  std::printf("%lld images, T = %d\nreverse steps  rate (bits/dim)  distortion (RMSE [0,255])\n",
              static_cast<long long>(rd.images), rd.T);
  for (const eval::RateDistortionPoint& p : eval::table4_rows(rd)) {
    std::printf("%13d  %15.5f  %25.5f\n", p.reverse_steps, p.rate_bpd, p.rmse_mean);
  }
  if (!cli.has("no-plot")) {
    const std::string png = fs::join(dir, "rate_distortion.png");
    if (!run_python(DDPM_TOOLS_DIR "/plot_rate_distortion.py", {fs::join(dir, "rate_distortion.csv"), png})) {
      input_error(png, ": plotting failed (tools/plot_rate_distortion.py needs /usr/bin/python3 with "
                       "python3-matplotlib); the CSV files are written; --no-plot skips the figure");
    }
  }
  std::printf("wrote %s/{rate_distortion.csv,table4.csv%s}\n", dir.c_str(),
              cli.has("no-plot") ? "" : ",rate_distortion.png");
  return kExitOk;
}

int cmd_interpolate(int argc, char** argv) {
  Cli cli("ddpm_eval interpolate", "(--checkpoint FILE | --run-dir DIR) --data DIR --pairs I:J[,I:J...] --out DIR",
          "The paper's interpolation (Fig. 8): images I and J of a prepared dataset are diffused to timestep t, "
          "their latents mixed at lambda = 0, 1/(L-1), ..., 1 and each mix decoded by the reverse process from t, "
          "with the same reverse noise for every lambda of a pair (so lambda = 0 and 1 reconstruct I and J). "
          "Writes DIR/pair_I_J.png: I, the L decoded mixes, J.");
  add_model_options(cli, ConfigOverrides::kDiffusionAndDevice);
  cli.option("data", "DIR", "prepared dataset holding the source images");
  cli.option("pairs", "I:J,...", "pairs of image indices in the dataset", "0:1");
  cli.option("t", "T", "timestep of the latents (0-based; the paper's figures use 500)", "500");
  cli.option("lambdas", "L", "mixing weights, evenly spaced from 0 to 1", "9");
  cli.option("seed", "S", "seed of the encoding and reverse noise", "0");
  cli.option("out", "DIR", "output directory");
  cli.parse(argc, argv, 2);
  eval::InterpolationJob job;
  job.data_dir = cli.require("data");
  job.out_dir = cli.require("out");
  job.pairs = eval::parse_pairs(cli.get("pairs"));
  job.t = static_cast<int>(cli.get_int("t"));
  job.lambdas = static_cast<int>(cli.get_int("lambdas"));
  job.seed = static_cast<uint64_t>(cli.get_int("seed"));
  eval::interpolate(load_model(cli, ConfigOverrides::kDiffusionAndDevice, "interpolation"), job);
  return kExitOk;
}

// The options fid and is share: the network's weights, the resize, the batch and size.
void add_inception_options(Cli& cli) {
  cli.option("inception", "FILE",
             "Inception weights (tools/convert_inception.py); default $DDPM_INCEPTION, then "
             "~/.cache/ddpm/inception-2015-12-05.h5");
  cli.option("resize", "tf|torch|pil-bicubic",
             "resize to 299: tf (TF1 bilinear, the paper's, TTUR's, OpenAI's), torch (pytorch-fid), pil-bicubic "
             "(clean-fid)",
             "tf");
  cli.option("batch", "N", "images per Inception forward pass", "50");
  cli.option("num", "N", "images of each set (0: all)", "0");
  cli.option("threads", "T", "CPU threads (0: all cores)", "0");
  cli.option("device", "cpu|cuda", "backend of the network (cuda: the first GPU, fp32)", "cpu");
}

// What every JSON result line says of how it was measured.
nlohmann::json provenance_json(const eval::InceptionEvaluator& evaluator) {
  const eval::StatsProvenance p = evaluator.provenance();
  return {{"resize", p.resize},
          {"inception_weights", evaluator.weights_source().published() ? "published" : "other"},
          {"inception_weights_sha256", p.weights_sha256}};
}

struct InceptionSetup {
  std::unique_ptr<Ops> ops;
  std::unique_ptr<eval::InceptionEvaluator> evaluator;
};

InceptionSetup inception_setup(const Cli& cli) {
  InceptionSetup s;
  DeviceConfig device;
  device.kind = cli.get("device");
  device.threads = static_cast<int>(cli.get_int("threads"));
  device.validate("--device");
  const std::string weights = eval::find_inception_weights(cli.get("inception"), "--inception");
  const eval::InceptionResize resize = eval::parse_inception_resize(cli.get("resize"), "--resize");
  s.ops = make_backend(device, 0, device.threads);
  s.evaluator = std::make_unique<eval::InceptionEvaluator>(*s.ops, weights, resize,
                                                           static_cast<int>(cli.get_int("batch")));
  return s;
}

int cmd_fid(int argc, char** argv) {
  Cli cli("ddpm_eval fid", "A B [options]   |   --save-stats IN OUT.npz [options]",
          "The Frechet Inception Distance between A and B, as TTUR / pytorch-fid compute it: pool_3 features of the "
          "2015-12-05 TF Inception (pytorch-fid's port), mean and covariance in float64, the matrix square root by "
          "symmetric eigendecompositions. A and B are each a folder of PNG/JPEG images (recursive), an .npz with "
          "arr_0 uint8 [N,H,W,C] (ddpm_sample's samples.npz, OpenAI's reference batches), an .npz with mu and sigma "
          "(pytorch-fid statistics) or a prepared dataset directory. Prints 'FID: <value>' last. --save-stats "
          "writes IN's statistics as pytorch-fid does (mu float64 [2048], sigma float64 [2048,2048]) and refuses to "
          "overwrite.");
  add_inception_options(cli);
  cli.flag("save-stats", "write the statistics of IN to OUT.npz instead of a distance");
  cli.flag("json", "also print the result as one JSON line");
  cli.parse(argc, argv, 2);
  const std::vector<std::string>& paths = cli.positional();
  if (paths.size() != 2) input_error(cli.has("save-stats") ? "--save-stats takes IN OUT.npz" : "give two sets, A and B");
  const int64_t num = cli.get_int("num");
  if (num < 0) input_error("--num must be >= 0");
  if (cli.has("save-stats") && fs::exists(paths[1])) input_error(paths[1], ": exists; give another output");
  InceptionSetup s = inception_setup(cli);
  if (cli.has("save-stats")) {
    const eval::FeatureStats stats = eval::fid_operand_stats(*s.evaluator, paths[0], num);
    eval::write_fid_stats(paths[1], stats);
    std::printf("wrote %s (mu [%lld], sigma [%lld, %lld]; %s, %lld images)\n", paths[1].c_str(),
                static_cast<long long>(stats.dim), static_cast<long long>(stats.dim), static_cast<long long>(stats.dim),
                s.evaluator->describe().c_str(), static_cast<long long>(stats.provenance.images));
    return kExitOk;
  }
  const eval::FeatureStats a = eval::fid_operand_stats(*s.evaluator, paths[0], num);
  const eval::FeatureStats b = eval::fid_operand_stats(*s.evaluator, paths[1], num);
  const double fid = eval::frechet_distance(a, b);
  if (cli.has("json")) {
    nlohmann::json line = provenance_json(*s.evaluator);
    line["fid"] = fid, line["a"] = paths[0], line["b"] = paths[1];
    std::printf("%s\n", line.dump().c_str());
  }
  std::printf("FID: %.6f (%s)\n", fid, s.evaluator->describe().c_str());
  return kExitOk;
}

int cmd_is(int argc, char** argv) {
  Cli cli("ddpm_eval is", "SAMPLES [options]",
          "The Inception Score of a set of images (a folder, an .npz with arr_0 or a prepared dataset), as "
          "improved-gan's inception_score/model.py computes it: the softmax of pool_3 times the classifier's matrix "
          "(without its bias, as improved-gan and OpenAI's evaluator take it), K contiguous splits "
          "[i*N/K, (i+1)*N/K), exp(mean KL(p(y|x) || p(y))) per split. Prints 'IS: <mean> \u00b1 <std over the "
          "splits> (<resize>, <which Inception weights>)' last.");
  add_inception_options(cli);
  cli.option("splits", "K", "contiguous splits of the images", "10");
  cli.flag("json", "also print the result as one JSON line");
  cli.parse(argc, argv, 2);
  if (cli.positional().size() != 1) input_error("give one set of images");
  const int splits = static_cast<int>(cli.get_int("splits"));
  if (splits < 1) input_error("--splits must be >= 1");
  InceptionSetup s = inception_setup(cli);
  const std::unique_ptr<eval::ImageSet> images = eval::open_image_set(cli.positional()[0]);
  eval::FeatureRequest request;
  request.logits = true;
  const eval::FeatureRun run = s.evaluator->run(*images, cli.get_int("num"), request, cli.positional()[0]);
  const eval::InceptionScore score = eval::inception_score_from_logits(run.logits.rows(), splits);
  if (cli.has("json")) {
    nlohmann::json line = provenance_json(*s.evaluator);
    line["inception_score"] = score.mean, line["std"] = score.std, line["splits"] = splits;
    line["images"] = run.images;
    std::printf("%s\n", line.dump().c_str());
  }
  std::printf("IS: %.6f \u00b1 %.6f (%s)\n", score.mean, score.std, s.evaluator->describe().c_str());
  return kExitOk;
}

// The features of one operand of `evaluate`: everything from its images, then the FID
// and sFID statistics an .npz holds (mu, sigma; mu_s, sigma_s) in their place, as the
// evaluator's read_statistics takes them.
eval::FeatureRun evaluate_operand(eval::InceptionEvaluator& evaluator, const std::string& path, int64_t num,
                                  bool logits) {
  eval::FeatureRequest request;
  request.logits = logits;
  request.pool3_rows = request.spatial_stats = true;
  const std::unique_ptr<eval::ImageSet> images = eval::open_image_set(path);
  eval::FeatureRun run = evaluator.run(*images, num, request, path);
  if (!fs::is_dir(path)) {
    const NpzReader npz(path);
    if (npz.contains("mu") && npz.contains("sigma")) run.pool3 = eval::read_fid_stats(path);
    if (npz.contains("mu_s") && npz.contains("sigma_s")) run.spatial = eval::read_fid_stats(path, "mu_s", "sigma_s");
    // Both statistics come from the file's one provenance.
    const bool from_file = npz.contains("mu") || npz.contains("mu_s");
    const std::string note =
        from_file ? eval::check_provenance(eval::read_stats_provenance(path), evaluator.provenance(), path) : "";
    if (!note.empty()) std::fprintf(stderr, "ddpm_eval: %s\n", note.c_str());
  }
  return run;
}

int cmd_evaluate(int argc, char** argv) {
  Cli cli("ddpm_eval evaluate", "REF SAMPLES [options]",
          "What OpenAI's guided-diffusion evaluations/evaluator.py prints, computed as it does: the Inception Score "
          "of SAMPLES (the softmax of pool_3 times the classifier's matrix, without its bias, in contiguous parts "
          "of 5000), FID and sFID against REF (sFID: the first 7 channels of Mixed_6d's 1x1 branch, 17x17x7 "
          "features) and improved precision and recall (k = 3 nearest neighbours of the pool_3 features). REF and "
          "SAMPLES are image sets as for fid (OpenAI's reference batches are .npz files with arr_0); where an .npz "
          "also holds mu/sigma or mu_s/sigma_s, those statistics are used for FID and sFID, as the evaluator does. "
          "The images go through the tf resize, as in the evaluator's graph, unless --resize says otherwise. The "
          "distances of precision and recall are the evaluator's float16 ones unless --pr-distances float64.");
  add_inception_options(cli);
  cli.option("pr-distances", "float16|float64",
             "precision/recall distances: float16 as the evaluator's DistanceBlock rounds them, or exact", "float16");
  cli.flag("json", "also print the results as one JSON line");
  cli.parse(argc, argv, 2);
  const std::vector<std::string>& paths = cli.positional();
  if (paths.size() != 2) input_error("give the reference batch and the sample batch (REF SAMPLES)");
  const int64_t num = cli.get_int("num");
  if (num < 0) input_error("--num must be >= 0");
  const eval::DistancePrecision distances = eval::parse_distance_precision(cli.get("pr-distances"), "--pr-distances");
  InceptionSetup s = inception_setup(cli);
  const eval::FeatureRun ref = evaluate_operand(*s.evaluator, paths[0], num, false);
  const eval::FeatureRun samples = evaluate_operand(*s.evaluator, paths[1], num, true);
  const double is = eval::inception_score_in_parts_of(samples.logits.rows()).mean;
  const double fid = eval::frechet_distance(samples.pool3, ref.pool3);
  const double sfid = eval::frechet_distance(samples.spatial, ref.spatial);
  const eval::PrecisionRecall pr =
      eval::precision_recall(ref.pool3_rows.rows(), samples.pool3_rows.rows(), eval::kManifoldNeighbours, distances);
  const std::string how = s.evaluator->describe();
  std::printf("Inception Score: %.6f (%s)\nFID: %.6f (%s)\nsFID: %.6f (%s)\nPrecision: %.6f (%s)\nRecall: %.6f (%s)\n",
              is, how.c_str(), fid, how.c_str(), sfid, how.c_str(), pr.precision, how.c_str(), pr.recall, how.c_str());
  if (cli.has("json")) {
    nlohmann::json line = provenance_json(*s.evaluator);
    line["inception_score"] = is, line["fid"] = fid, line["sfid"] = sfid;
    line["precision"] = pr.precision, line["recall"] = pr.recall, line["pr_distances"] = cli.get("pr-distances");
    std::printf("%s\n", line.dump().c_str());
  }
  return kExitOk;
}

}  // namespace
}  // namespace ddpm

int main(int argc, char** argv) {
  return ddpm::run_app("ddpm_eval", [&]() -> int {
    const std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd == "info") return ddpm::cmd_info(argc, argv);
    if (cmd == "eps") return ddpm::cmd_eps(argc, argv);
    if (cmd == "bpd") return ddpm::cmd_bpd(argc, argv);
    if (cmd == "rate-distortion") return ddpm::cmd_rate_distortion(argc, argv);
    if (cmd == "interpolate") return ddpm::cmd_interpolate(argc, argv);
    if (cmd == "fid") return ddpm::cmd_fid(argc, argv);
    if (cmd == "is") return ddpm::cmd_is(argc, argv);
    if (cmd == "evaluate") return ddpm::cmd_evaluate(argc, argv);
    if (cmd == "--help" || cmd == "-h" || cmd == "help") {
      std::cout << ddpm::kUsage;
      return 0;
    }
    std::cerr << ddpm::kUsage;
    if (cmd.empty()) ddpm::input_error("no command given");
    ddpm::input_error("unknown command '", cmd, "'");
  });
}
