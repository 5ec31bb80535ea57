// bench_dist: the distributed training step, measured here and extrapolated to a cluster.
//
// Measure (under mpirun, CPU backend, synthetic data): the median step of W ranks split
// into forward, backward (with the bucketed all-reduce running behind it), the part of
// the all-reduce that backward did not hide (finish()'s wait) and the optimizer; the
// same all-reduce alone; and when each gradient became final during backward.
//
// Estimate (--estimate-ranks): the step time and scaling efficiency of the config's model
// on N GPUs, from that measured readiness profile (the fraction of backward elapsed when
// the gradients from each offset to the end are final), the model's FLOPs, a stated GPU
// throughput and a stated network bandwidth. Buckets go one after another, in order, as
// the reducer sends them; each takes a ring all-reduce's 2 (N-1)/N bytes / bandwidth
// plus 2 (N-1) latencies.
//
//   mpirun -np 2 bench_dist --config configs/demo.yaml --batch 32 --bucket-mb 0.25
//   bench_dist --config configs/celebahq256.yaml --batch 1 --steps 1 --warmup 0
//              --estimate-ranks 8,16,32,64 --estimate-batch 64
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <vector>

#include "apps/cli.h"
#include "core/clock.h"
#include "core/common.h"
#include "core/config.h"
#include "core/ops.h"
#include "core/optim.h"
#include "core/rng.h"
#include "core/unet.h"
#include "dist/allreduce.h"
#include "dist/world.h"

namespace ddpm {
namespace {

// (offset, fraction of backward elapsed when every gradient from offset on was final).
using Readiness = std::vector<std::pair<int64_t, double>>;

double ready_fraction(const Readiness& r, int64_t offset) {
  for (const auto& [from, fraction] : r) {
    if (from <= offset) return fraction;
  }
  return 1.0;
}

struct Measured {
  double forward = 0, backward = 0, exposed = 0, optimizer = 0, step = 0, comm_alone = 0;
  double imbalance = 0;  // the slowest rank's backward end minus the fastest one's
  Readiness readiness;
};

Measured measure(const World& world, const Config& cfg, int global_batch, int steps, int warmup,
                 int64_t bucket_floats, AllReduceMode mode, int threads) {
  const int W = world.size();
  if (global_batch % W != 0) input_error("--batch ", global_batch, " is not divisible by the ", W, " ranks");
  const int N = global_batch / W;
  auto ops = make_cpu_ops(threads);
  UNet net(cfg.model);
  const int64_t P = net.layout().size();
  float* params = ops->alloc(P);
  float *grads = ops->alloc(P), *m = ops->alloc(P), *v = ops->alloc(P), *ema = ops->alloc(P);
  init_params(net.layout(), params, cfg.train.seed);
  ops->copy(ema, params, P);
  Optimizer opt(cfg.train);
  const int R = cfg.model.resolution;
  const int64_t in_n = int64_t{N} * R * R * cfg.model.in_channels, out_n = int64_t{N} * R * R * cfg.model.out_ch;
  std::vector<float> x(in_n), d_eps(out_n), t(N), eps(out_n);
  normal_fill(x.data(), in_n, 1, Purpose::kTest, 0, 0, world.rank());
  normal_fill(d_eps.data(), out_n, 1, Purpose::kTest, 0, 1, world.rank());
  for (float& d : d_eps) d *= 1e-3f;
  for (int i = 0; i < N; ++i) t[i] = static_cast<float>((i * 997 + world.rank() * 31) % cfg.diffusion.num_timesteps);
  net.prepare(*ops, N);
  auto reducer = make_mpi_allreduce(world, bucket_floats, mode);
  Pass ps;
  ps.ops = ops.get(), ps.params = params, ps.grads = grads, ps.N = N, ps.training = true;

  std::vector<double> fwd, bwd, exposed, optim, step, imbalance;
  Measured out;
  for (int it = 0; it < warmup + steps; ++it) {
    ps.dropout = DropoutKey{cfg.train.seed, 0, static_cast<uint32_t>(it), static_cast<uint32_t>(world.rank() * N)};
    world.barrier();  // steps start together, as after the previous step's agreement
    const double t0 = now_seconds();
    net.forward(ps, eps.data(), x.data(), t.data());
    const double t1 = now_seconds();
    ops->zero(grads, P);
    reducer->begin(grads, P);
    std::vector<std::pair<int64_t, double>> calls;
    net.backward(ps, d_eps.data(), [&](int64_t from) {
      calls.emplace_back(from, now_seconds());
      reducer->ready(from);
    });
    const double t2 = now_seconds();
    reducer->finish();
    const double t3 = now_seconds();
    opt.step(*ops, params, grads, m, v, ema, P, 1.0);
    ++ps.version;
    const double t4 = now_seconds();
    // The slowest rank sets the pace: the all-reduce is exposed from the moment the last
    // rank finished backward until it completes (waiting for a slower rank is imbalance).
    double ends[5] = {t1 - t0, t2 - t0, t3 - t0, t4 - t0, -(t2 - t0)};
    DDPM_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, ends, 5, MPI_DOUBLE, MPI_MAX, world.comm()));
    if (it < warmup) continue;
    fwd.push_back(ends[0]), bwd.push_back(ends[1] - ends[0]), exposed.push_back(std::max(0.0, ends[2] - ends[1]));
    optim.push_back(ends[3] - ends[2]), step.push_back(ends[3]), imbalance.push_back(ends[1] + ends[4]);
    out.readiness.clear();
    for (const auto& [from, at] : calls) out.readiness.emplace_back(from, (at - t1) / (t2 - t1));
  }
  std::vector<double> alone;
  for (int rep = 0; rep < 5 && W > 1; ++rep) {
    world.barrier();
    const double t0 = now_seconds();
    reducer->begin(grads, P);
    reducer->finish();
    alone.push_back(now_seconds() - t0);
  }
  out.forward = median(fwd), out.backward = median(bwd), out.exposed = median(exposed);
  out.optimizer = median(optim), out.step = median(step), out.imbalance = median(imbalance);
  double alone_max = median(alone);
  DDPM_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, &alone_max, 1, MPI_DOUBLE, MPI_MAX, world.comm()));
  out.comm_alone = alone_max;
  for (float* p : {params, grads, m, v, ema}) ops->release(p);
  return out;
}

struct Cluster {
  double tflops;         // sustained per GPU on this model's convolutions
  double bandwidth_gbs;  // all-reduce bus bandwidth per GPU
  double latency_us;     // per ring step
  double hbm_gbs;        // GPU memory bandwidth, for the optimizer pass
};

struct Estimate {
  double compute = 0, comm = 0, exposed = 0, step = 0, efficiency = 0;
};

// One step of N GPUs with `per_gpu` images each, against one GPU doing all N * per_gpu.
Estimate estimate(const Readiness& readiness, int64_t P, int64_t bucket_floats, double macs_per_image, int N,
                  int per_gpu, const Cluster& c) {
  const double fwd = per_gpu * 2 * macs_per_image / (c.tflops * 1e12), bwd = 2 * fwd;
  const double optimizer = 10.0 * 4 * P / (c.hbm_gbs * 1e9);  // read p g m v ema g(norm), write p m v ema
  Estimate e;
  e.compute = fwd + bwd;
  double busy_until = 0;  // buckets go one at a time, in order
  for (int64_t k = 0; k * bucket_floats < P; ++k) {
    const int64_t start = std::max<int64_t>(0, P - (k + 1) * bucket_floats);
    const double bytes = 4.0 * (P - k * bucket_floats - start);
    const double t =
        N == 1 ? 0 : 2.0 * (N - 1) / N * bytes / (c.bandwidth_gbs * 1e9) + 2.0 * (N - 1) * c.latency_us * 1e-6;
    const double ready = fwd + ready_fraction(readiness, start) * bwd;
    busy_until = std::max(busy_until, ready) + t;
    e.comm += t;
  }
  e.exposed = std::max(0.0, busy_until - (fwd + bwd));
  e.step = fwd + bwd + e.exposed + optimizer;
  const double one_gpu = N * (fwd + bwd) + optimizer;
  e.efficiency = one_gpu / (N * e.step);
  return e;
}

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty()) out.push_back(std::stoi(item));
  }
  return out;
}

int run(World& world, int argc, char** argv) {
  Cli cli("bench_dist", "--config FILE --batch B [options]",
          "Times the distributed training step on this machine's ranks and extrapolates it to a GPU cluster.");
  cli.option("config", "FILE", "YAML config (model:, diffusion: and train: are used)");
  cli.option("batch", "B", "global batch of the measured steps", "32");
  cli.option("steps", "S", "timed steps", "10");
  cli.option("warmup", "W", "untimed steps first", "2");
  cli.option("bucket-mb", "M", "all-reduce bucket size in MiB", "25");
  cli.option("mode", "auto|thread|nonblocking", "how the all-reduce overlaps backward", "auto");
  cli.option("threads", "T", "CPU threads per rank (0: OpenMP default)", "1");
  cli.option("estimate-ranks", "N,N,...", "also estimate the step on these GPU counts", "");
  cli.option("estimate-batch", "B", "global batch of the estimate", "64");
  cli.option("weak-batch", "b", "images per GPU of the weak-scaling estimate", "8");
  cli.option("gpu-tflops", "F", "sustained TFLOP/s per GPU", "100");
  cli.option("bandwidth-gbs", "G", "all-reduce bus bandwidth per GPU in GB/s", "20");
  cli.option("latency-us", "L", "latency per ring step in microseconds", "10");
  cli.option("hbm-gbs", "H", "GPU memory bandwidth in GB/s", "1500");
  cli.parse(argc, argv);
  const Config cfg = load_config(cli.require("config"));
  const std::string mode_name = cli.get("mode");
  AllReduceMode mode = AllReduceMode::kAuto;
  if (mode_name == "thread") mode = AllReduceMode::kThread;
  else if (mode_name == "nonblocking") mode = AllReduceMode::kNonBlocking;
  else if (mode_name != "auto") input_error("--mode must be auto, thread or nonblocking");
  const auto bucket = std::max<int64_t>(1, static_cast<int64_t>(cli.get_double("bucket-mb") * (1 << 20) / 4));
  const Measured r = measure(world, cfg, static_cast<int>(cli.get_int("batch")), static_cast<int>(cli.get_int("steps")),
                             static_cast<int>(cli.get_int("warmup")), bucket, mode,
                             static_cast<int>(cli.get_int("threads")));
  UNet net(cfg.model);
  const int64_t P = net.layout().size();
  if (!world.is_root()) return 0;
  const int W = world.size();
  const std::string used_mode =
      W == 1 ? "no" : mode_name != "auto" ? mode_name : world.thread_multiple() ? "thread" : "nonblocking";
  std::printf("bench_dist: %s, %lld parameters (%.1f MB of gradients), %.2f GMACs/image; %d rank(s) x %lld images, "
              "bucket %.2f MiB (%lld buckets), %s mode, %s threads per rank\n",
              cli.get("config").c_str(), static_cast<long long>(net.layout().num_parameters()), 4e-6 * P,
              net.macs_per_image() * 1e-9, W, static_cast<long long>(cli.get_int("batch") / W),
              cli.get_double("bucket-mb"), static_cast<long long>((P + bucket - 1) / bucket), used_mode.c_str(),
              cli.get("threads").c_str());
  std::printf("step %.2f ms = forward %.2f + backward %.2f + exposed all-reduce %.2f + optimizer %.2f  (%.1f img/s; "
              "slowest rank's times)\n",
              1e3 * r.step, 1e3 * r.forward, 1e3 * r.backward, 1e3 * r.exposed, 1e3 * r.optimizer,
              cli.get_int("batch") / r.step);
  if (W > 1) {
    std::printf("all-reduce alone %.2f ms; not hidden behind backward: %.2f ms = %.0f%%; ranks finish backward up to "
                "%.2f ms apart\n",
                1e3 * r.comm_alone, 1e3 * r.exposed, 100 * r.exposed / std::max(r.comm_alone, 1e-12),
                1e3 * r.imbalance);
  }
  std::printf("gradient readiness (share of the buffer final -> share of backward elapsed):");
  for (double share : {0.1, 0.25, 0.5, 0.75, 0.9, 1.0}) {
    std::printf("  %.0f%% -> %.0f%%", 100 * share,
                100 * ready_fraction(r.readiness, static_cast<int64_t>(std::llround(P * (1 - share)))));
  }
  std::printf("\nRESULT step_s=%.5f exposed_s=%.5f comm_alone_s=%.5f imbalance_s=%.5f\n", r.step, r.exposed,
              r.comm_alone, r.imbalance);

  const std::vector<int> ranks = parse_list(cli.get("estimate-ranks"));
  if (ranks.empty()) return 0;
  const Cluster c{cli.get_double("gpu-tflops"), cli.get_double("bandwidth-gbs"), cli.get_double("latency-us"),
                  cli.get_double("hbm-gbs")};
  const int B = static_cast<int>(cli.get_int("estimate-batch")), weak = static_cast<int>(cli.get_int("weak-batch"));
  std::printf("\nestimate: %.0f TFLOP/s per GPU, all-reduce %.0f GB/s per GPU + %.0f us per ring step, HBM %.0f GB/s, "
              "fp32 gradients, %.3g MiB buckets, the readiness profile above\n",
              c.tflops, c.bandwidth_gbs, c.latency_us, c.hbm_gbs, cli.get_double("bucket-mb"));
  std::printf("%6s %8s %10s %10s %10s %10s %9s %11s\n", "GPUs", "img/GPU", "compute", "all-reduce", "exposed", "step",
              "steps/s", "efficiency");
  for (const int per_gpu_mode : {0, 1}) {
    for (int N : ranks) {
      const int per_gpu = per_gpu_mode ? weak : B / N;
      if (per_gpu < 1 || (!per_gpu_mode && B % N)) continue;
      const Estimate e = estimate(r.readiness, P, bucket, static_cast<double>(net.macs_per_image()), N, per_gpu, c);
      std::printf("%6d %8d %9.1fms %9.1fms %9.1fms %9.1fms %9.2f %10.0f%%\n", N, per_gpu, 1e3 * e.compute,
                  1e3 * e.comm, 1e3 * e.exposed, 1e3 * e.step, 1 / e.step, 100 * e.efficiency);
    }
    if (!per_gpu_mode) std::printf("(above: global batch %d; below: %d images per GPU)\n", B, weak);
  }
  return 0;
}

}  // namespace
}  // namespace ddpm

int main(int argc, char** argv) {
  ddpm::World world(&argc, &argv);
  return ddpm::run_app("bench_dist", [&] { return ddpm::run(world, argc, argv); });
}
