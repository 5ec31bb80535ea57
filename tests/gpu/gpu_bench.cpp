// ddpm_gpu_bench: the GPU timings of bench/gpu_check.sh on synthetic data.
//   --mode train   training steps as ddpm_train runs them on one GPU: noise and q_sample
//                  on the device, forward, L_simple and its gradient, backward, global
//                  norm + fused Adam/EMA; median seconds per step after warm-up.
//   --mode sample  1000-step ancestral sampling of --batch images: each step's U-Net
//                  forward replayed as a CUDA graph (Ops::run_graph), then p_sample.
//   --mode sampler the same through core/sampler (whatever it does with graphs).
// Prints one line "RESULT key=value ..." for the script to parse.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <vector>

#include "apps/cli.h"
#include "core/backend.h"
#include "core/buffer.h"
#include "core/clock.h"
#include "core/common.h"
#include "core/config.h"
#include "core/diffusion.h"
#include "core/diffusion_ops.h"
#include "core/optim.h"
#include "core/params.h"
#include "core/rng.h"
#include "core/sampler.h"
#include "core/unet.h"

namespace ddpm {
namespace {

struct Model {
  UNet net;
  int64_t P;
  ParamBuffer params, ema;
  Buffer grads, m, v;
  Model(const Config& cfg, Ops& ops)
      : net(cfg.model), P(net.layout().size()), params(ops, P), ema(ops, P), grads(ops, P), m(ops, P), v(ops, P) {
    HostFloats host = alloc_host_floats(P);
    init_params(net.layout(), host.get(), cfg.train.seed);
    params.load(host.get());
    ema.copy_from(params);
  }
};

void time_training(const Config& cfg, Ops& ops, int N, int steps, int warmup) {
  Model model(cfg, ops);
  const Diffusion diffusion(cfg.diffusion);
  Optimizer opt(cfg.train);
  const int R = cfg.model.resolution;
  const int64_t per_example = int64_t{R} * R * cfg.model.in_channels;
  const Buffer x0_buf(ops, N * per_example), noise_buf(ops, N * per_example), x_t_buf(ops, N * per_example);
  const Buffer eps_buf(ops, N * per_example), d_eps_buf(ops, N * per_example), t_buf(ops, N);
  float *x0 = x0_buf.get(), *noise = noise_buf.get(), *x_t = x_t_buf.get(), *eps = eps_buf.get();
  float *d_eps = d_eps_buf.get(), *t_dev = t_buf.get();
  DiffusionOps& kernels = ops.diffusion();
  kernels.fill_normal(x0, N, per_example, 1, Purpose::kTest, 0, 0, 0);
  model.net.prepare(ops, N);
  Pass ps;
  ps.ops = &ops, ps.params = model.params.get(), ps.grads = model.grads.get(), ps.N = N, ps.training = true;
  std::vector<int> t(N);
  std::vector<float> t_float(N);
  std::vector<double> losses(N);
  std::vector<double> times;
  double loss = 0;
  for (int it = 0; it < warmup + steps; ++it) {
    ops.synchronize();
    const double t0 = now_seconds();
    for (int n = 0; n < N; ++n) t[n] = (n * 997 + it * 131) % diffusion.num_timesteps(), t_float[n] = float(t[n]);
    ops.upload(t_dev, t_float.data(), N);
    kernels.fill_normal(noise, N, per_example, cfg.train.seed, Purpose::kNoise, 0, static_cast<uint32_t>(it), 0);
    kernels.q_sample(diffusion.table(), x_t, x0, noise, t.data(), N, per_example);
    ps.dropout = DropoutKey{cfg.train.seed, 0, static_cast<uint32_t>(it), 0};
    ps.version = model.params.version();
    ops.zero(model.grads.get(), model.P);
    model.net.forward(ps, eps, x_t, t_dev);
    kernels.training_losses(diffusion.table(), losses.data(), d_eps, eps, x0, x_t, noise, t.data(), N, per_example,
                            1.0 / N);
    model.net.backward(ps, d_eps);
    // As the trainer updates: the norm, then the update, which moves the weights' version on.
    opt.apply(ops, model.params, model.grads, model.m, model.v, &model.ema,
              opt.gradient_norm(ops, model.grads.get(), model.P));
    ops.synchronize();
    if (it >= warmup) times.push_back(now_seconds() - t0);
    loss = 0;
    for (double l : losses) loss += l / N;
  }
  const double step_s = median(times);
  std::printf("train: batch %d, %.4f s/step (%.1f img/s), last loss %.5f\n", N, step_s, N / step_s, loss);
  std::printf("RESULT train_step_s=%.6f train_img_s=%.3f\n", step_s, N / step_s);
}

// Ancestral sampling, each step's forward a replayed graph (or through core/sampler).
void time_sampling(const Config& cfg, Ops& ops, int N, int T_steps, bool through_sampler) {
  Model model(cfg, ops);
  const Diffusion diffusion(cfg.diffusion);
  const int R = cfg.model.resolution;
  const int64_t per_example = int64_t{R} * R * cfg.model.out_ch;
  std::vector<float> out(static_cast<size_t>(N * per_example));
  model.net.prepare(ops, N, PlanMode::kForwardOnly);  // as the sampler prepares it: no rebuild inside the timing
  ops.synchronize();
  const double t0 = now_seconds();
  int steps_run = 0;
  if (through_sampler) {
    SamplerOptions options;
    options.seed = 1;
    Sampler sampler(model.net, ops, diffusion, options);
    sampler.sample(model.ema, 0, N, out.data(), nullptr);
    steps_run = static_cast<int>(sampler.timesteps().size());
  } else {
    const Buffer x_buf(ops, N * per_example), eps_buf(ops, N * per_example), noise_buf(ops, N * per_example);
    const Buffer t_buf(ops, N);
    float *x = x_buf.get(), *eps = eps_buf.get(), *noise = noise_buf.get(), *t_dev = t_buf.get();
    Pass ps;
    ps.ops = &ops, ps.params = model.ema.get(), ps.version = model.ema.version(), ps.N = N;
    DiffusionOps& kernels = ops.diffusion();
    kernels.fill_normal(x, N, per_example, 1, Purpose::kSample, 1, 0, 0);
    std::vector<int> t(N);
    std::vector<float> t_float(N);
    const int first = std::min(T_steps, diffusion.num_timesteps()) - 1;
    for (int step = first; step >= 0; --step, ++steps_run) {
      std::fill(t.begin(), t.end(), step);
      std::fill(t_float.begin(), t_float.end(), static_cast<float>(step));
      ops.upload(t_dev, t_float.data(), N);
      ops.run_graph(0, [&] { model.net.forward(ps, eps, x, t_dev); });
      kernels.fill_normal(noise, N, per_example, 1, Purpose::kSample, 0, static_cast<uint32_t>(step), 0);
      kernels.p_sample(diffusion.table(), x, nullptr, eps, x, noise, t.data(), N, per_example);
    }
    ops.download(out.data(), x, N * per_example);
    ops.drop_graphs();
  }
  ops.synchronize();
  const double seconds = now_seconds() - t0;
  double mean_abs = 0;
  for (float v : out) mean_abs += std::fabs(v) / out.size();
  std::printf("sample%s: %d images, %d steps, %.3f s (mean |x0| %.4f)\n", through_sampler ? " (Sampler)" : "", N,
              steps_run, seconds, mean_abs);
  std::printf("RESULT sample_s=%.4f steps=%d\n", seconds, steps_run);
}

int run(int argc, char** argv) {
  Cli cli("ddpm_gpu_bench", "--config FILE --mode train|sample|sampler [options]",
          "Times training steps or sampling of the model in FILE on one GPU (synthetic data).");
  cli.option("config", "FILE", "YAML config (model:, diffusion:, train: sections)");
  cli.option("mode", "train|sample|sampler", "what to time", "train");
  cli.option("precision", "fp32|tf32|bf16", "device.precision", "fp32");
  cli.option("batch", "B", "images per step", "8");
  cli.option("steps", "S", "timed training steps, or sampling timesteps", "10");
  cli.option("warmup", "W", "untimed training steps first", "3");
  cli.option("device", "D", "GPU index", "0");
  cli.parse(argc, argv);
  const Config cfg = load_config(cli.require("config"));
  const int N = static_cast<int>(cli.get_int("batch")), steps = static_cast<int>(cli.get_int("steps"));
  const std::string mode = cli.get("mode");
  if (N < 1 || steps < 1) input_error("--batch and --steps must be >= 1");
  auto ops = make_cuda_ops(static_cast<int>(cli.get_int("device")), parse_precision(cli.get("precision")));
  std::printf("ddpm_gpu_bench: %s, %s, precision %s\n", cli.get("config").c_str(), mode.c_str(),
              cli.get("precision").c_str());
  if (mode == "train") {
    time_training(cfg, *ops, N, steps, static_cast<int>(cli.get_int("warmup")));
  } else if (mode == "sample" || mode == "sampler") {
    time_sampling(cfg, *ops, N, steps, mode == "sampler");
  } else {
    input_error("--mode: unknown value '", mode, "'");
  }
  return 0;
}

}  // namespace
}  // namespace ddpm

int main(int argc, char** argv) {
  return ddpm::run_app("ddpm_gpu_bench", [&] { return ddpm::run(argc, argv); });
}
