// Times the U-Net on synthetic data: training steps (forward + L_simple + backward +
// Adam/EMA update, as ddpm_train runs them) and forward-only passes (as sampling runs
// them). bench/vs_pytorch.sh runs it next to the same model in PyTorch.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "apps/cli.h"
#include "core/clock.h"
#include "core/common.h"
#include "core/config.h"
#include "core/cpu/cpu_ops.h"
#include "core/optim.h"
#include "core/rng.h"
#include "core/unet.h"

namespace ddpm {
namespace {

int run(int argc, char** argv) {
  Cli cli("bench_unet", "--config FILE --batch B [options]",
          "Times training steps and forward passes of the model in FILE on synthetic data (CPU backend).");
  cli.option("config", "FILE", "YAML config (its model: and train: sections are used)");
  cli.option("batch", "B", "images per step", "8");
  cli.option("steps", "S", "timed iterations of each kind", "5");
  cli.option("warmup", "W", "untimed iterations first", "2");
  cli.option("threads", "T", "CPU threads (0: OpenMP default)", "0");
  cli.option("mode", "both|train|forward", "what to time", "both");
  cli.flag("recompute", "recompute the residual blocks' inner activations in backward (train.recompute)");
  cli.option("precision", "fp32|bf16", "how convolutions and matrix products compute (device.precision)", "fp32");
  cli.flag("no-winograd", "the direct convolution kernels everywhere (device.winograd: false)");
  cli.parse(argc, argv);
  const Config cfg = load_config(cli.require("config"));
  const int N = static_cast<int>(cli.get_int("batch"));
  const int steps = static_cast<int>(cli.get_int("steps")), warmup = static_cast<int>(cli.get_int("warmup"));
  const std::string mode = cli.get("mode");
  if (N < 1 || steps < 1 || warmup < 0) input_error("--batch and --steps must be >= 1");

  auto ops = make_cpu_ops(static_cast<int>(cli.get_int("threads")), parse_precision(cli.get("precision")),
                          !cli.has("no-winograd"));
  UNet net(cfg.model);
  const int64_t P = net.layout().size();
  float* params = ops->alloc(P);
  float* grads = ops->alloc(P);
  float* m = ops->alloc(P);
  float* v = ops->alloc(P);
  float* ema = ops->alloc(P);
  HostFloats host = alloc_host_floats(P);
  init_params(net.layout(), host.get(), cfg.train.seed);
  ops->upload(params, host.get(), P);
  ops->copy(ema, params, P);
  Optimizer opt(cfg.train);

  const int R = cfg.model.resolution;
  const int64_t in_n = int64_t{N} * R * R * cfg.model.in_channels, out_n = int64_t{N} * R * R * cfg.model.out_ch;
  std::vector<float> x(in_n), noise(out_n), t(N);
  normal_fill(x.data(), in_n, 1, Purpose::kTest, 0, 0, 0);
  normal_fill(noise.data(), out_n, 1, Purpose::kTest, 0, 0, 1);
  for (int i = 0; i < N; ++i) t[i] = static_cast<float>((i * 997) % cfg.diffusion.num_timesteps);
  float* eps = ops->alloc(out_n);
  std::vector<float> d_eps(out_n);
  net.prepare(*ops, N, cli.has("recompute") ? PlanMode::kTrainingRecompute : PlanMode::kTraining);

  Pass ps;
  ps.ops = ops.get(), ps.params = params, ps.grads = grads, ps.N = N;
  std::printf("bench_unet: %s, batch %d, %lld parameters, %.2f GMACs/image, %s (oneDNN ISA %s)\n",
              cli.get("config").c_str(), N, static_cast<long long>(net.layout().num_parameters()),
              net.macs_per_image() * 1e-9, precision_name(ops->precision()), cpu_isa_name());
  double train_s = 0, forward_s = 0;
  if (mode == "both" || mode == "train") {
    std::vector<double> times;
    ps.training = true;
    for (int it = 0; it < warmup + steps; ++it) {
      const double t0 = now_seconds();
      ps.dropout = DropoutKey{cfg.train.seed, 0, static_cast<uint32_t>(it), 0};
      ops->zero(grads, P);
      net.forward(ps, eps, x.data(), t.data());
      double loss = 0;
      for (int64_t i = 0; i < out_n; ++i) {
        const float d = eps[i] - noise[i];
        loss += double(d) * d;
        d_eps[i] = 2.0f * d / static_cast<float>(out_n);
      }
      net.backward(ps, d_eps.data());
      opt.step(*ops, params, grads, m, v, ema, P);
      ++ps.version;
      if (it >= warmup) times.push_back(now_seconds() - t0);
    }
    train_s = median(times);
    std::printf("train step: %.4f s  (%.2f img/s)\n", train_s, N / train_s);
  }
  if (mode == "both" || mode == "forward") {
    std::vector<double> times;
    ps.training = false;
    for (int it = 0; it < warmup + steps; ++it) {
      const double t0 = now_seconds();
      net.forward(ps, eps, x.data(), t.data());
      if (it >= warmup) times.push_back(now_seconds() - t0);
    }
    forward_s = median(times);
    std::printf("forward:    %.4f s  (%.2f img/s)\n", forward_s, N / forward_s);
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);  // ru_maxrss: KiB on Linux
  std::printf("RESULT train_img_s=%.4f forward_img_s=%.4f precision=%s peak_rss_mb=%.0f\n",
              train_s > 0 ? N / train_s : 0.0, forward_s > 0 ? N / forward_s : 0.0, precision_name(ops->precision()),
              usage.ru_maxrss / 1024.0);
  for (float* p : {params, grads, m, v, ema, eps}) ops->release(p);
  return 0;
}

}  // namespace
}  // namespace ddpm

int main(int argc, char** argv) {
  return ddpm::run_app("bench_unet", [&] { return ddpm::run(argc, argv); });
}
