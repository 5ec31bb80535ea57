// Times each pass of the model's 3×3 convolutions (forward, backward data, backward
// weights) through oneDNN's direct kernels and through its Winograd kernels, side by
// side on this CPU: the measurement behind default_winograd_sizes() (core/cpu/cpu_ops.h).
// One convolution per level of the U-Net in FILE (ch·ch_mult[i] -> the same, on that
// level's map), fp32, interleaved repetitions, medians. Ends with the line
//   winograd_wins data_from=P weights_from=P
// the smallest map (pixels) from which Winograd won every larger level (0: never).
#include <algorithm>
#include <cstdio>
#include <memory>
#include <vector>

#include "apps/cli.h"
#include "core/clock.h"
#include "core/common.h"
#include "core/config.h"
#include "core/cpu/conv2d_winograd.h"
#include "core/cpu/cpu_ops.h"
#include "core/rng.h"

namespace ddpm {
namespace {

struct PassTimes {
  std::vector<double> fwd, weights, both;  // backward data = both - weights
};

// One repetition of each pass; the weights keep their version, so only the first call
// reorders them (as within a training step after the first pass).
void time_passes(Conv2d& conv, PassTimes& t, std::vector<float>& y, std::vector<float>& dx, std::vector<float>& dw,
                 std::vector<float>& db, const std::vector<float>& x, const std::vector<float>& w,
                 const std::vector<float>& b, const std::vector<float>& dy) {
  double t0 = now_seconds();
  conv.forward(y.data(), false, x.data(), w.data(), b.data(), 1);
  t.fwd.push_back(now_seconds() - t0);
  t0 = now_seconds();
  conv.backward(nullptr, false, dw.data(), db.data(), dy.data(), x.data(), w.data(), 1);
  t.weights.push_back(now_seconds() - t0);
  t0 = now_seconds();
  conv.backward(dx.data(), false, dw.data(), db.data(), dy.data(), x.data(), w.data(), 1);
  t.both.push_back(now_seconds() - t0);
}

int run(int argc, char** argv) {
  Cli cli("bench_conv", "--config FILE --batch B [options]",
          "Times the 3x3 convolutions of the U-Net in FILE, direct against Winograd, pass by pass (CPU, fp32).");
  cli.option("config", "FILE", "YAML config (its model: section is used)");
  cli.option("batch", "B", "images per convolution", "8");
  cli.option("reps", "R", "timed repetitions of each pass and algorithm", "7");
  cli.option("threads", "T", "CPU threads (0: OpenMP default)", "0");
  cli.parse(argc, argv);
  const ModelConfig model = load_config(cli.require("config")).model;
  const int N = static_cast<int>(cli.get_int("batch")), reps = static_cast<int>(cli.get_int("reps"));
  if (N < 1 || reps < 1) input_error("--batch and --reps must be >= 1");
  const int threads = static_cast<int>(cli.get_int("threads"));
  CpuOps direct(threads, Precision::kFp32, false), wino(threads, Precision::kFp32, true);
  wino.set_winograd_sizes({1, 1});  // Winograd wherever oneDNN has it, to compare
  const WinogradSizes chosen = default_winograd_sizes();
  std::printf("bench_conv: %s, batch %d, oneDNN ISA %s; this CPU's default: Winograd data from %lld pixels, "
              "weights from %lld\n",
              cli.get("config").c_str(), N, cpu_isa_name(), static_cast<long long>(chosen.data_pixels),
              static_cast<long long>(chosen.weights_pixels));
  std::printf("%-22s %-9s %10s %10s %7s\n", "conv", "pass", "direct ms", "wino ms", "ratio");
  int64_t data_from = 0, weights_from = 0;
  bool data_lost = false, weights_lost = false;  // a larger map where Winograd lost
  for (size_t level = 0; level < model.ch_mult.size(); ++level) {
    const int R = model.resolution >> level, C = model.ch * model.ch_mult[level];
    ConvSpec s;
    s.N = N, s.H = s.W = R, s.C = s.O = C;
    if (!winograd_passes(s, wino.winograd_sizes()).data) continue;
    const int64_t in_n = int64_t{N} * R * R * C;
    std::vector<float> x(in_n), w(int64_t{C} * C * 9), b(C), dy(in_n), y(in_n), dx(in_n), dw(w.size()), db(C);
    normal_fill(x.data(), in_n, 1, Purpose::kTest, 0, 0, 0);
    normal_fill(dy.data(), in_n, 1, Purpose::kTest, 0, 0, 1);
    normal_fill(w.data(), static_cast<int64_t>(w.size()), 1, Purpose::kTest, 0, 0, 2);
    auto conv_direct = direct.make_conv2d(s), conv_wino = wino.make_conv2d(s);
    PassTimes td, tw;
    for (int r = 0; r < reps + 1; ++r) {  // the first repetition warms up and is dropped
      time_passes(*conv_direct, td, y, dx, dw, db, x, w, b, dy);
      time_passes(*conv_wino, tw, y, dx, dw, db, x, w, b, dy);
    }
    for (PassTimes* t : {&td, &tw})
      for (auto* v : {&t->fwd, &t->weights, &t->both}) v->erase(v->begin());
    char name[64];
    std::snprintf(name, sizeof(name), "%dx%d %d->%d", R, R, C, C);
    const double data_d = median(td.both) - median(td.weights), data_w = median(tw.both) - median(tw.weights);
    const struct {
      const char* pass;
      double d, w;
    } rows[] = {{"forward", median(td.fwd), median(tw.fwd)},
                {"bwd data", data_d, data_w},
                {"bwd wts", median(td.weights), median(tw.weights)}};
    for (const auto& row : rows)
      std::printf("%-22s %-9s %10.2f %10.2f %7.2f\n", name, row.pass, row.d * 1e3, row.w * 1e3, row.d / row.w);
    // Levels run from the largest map down: a size counts while Winograd keeps winning.
    const bool data_wins = rows[0].d + rows[1].d > rows[0].w + rows[1].w, weights_wins = rows[2].d > rows[2].w;
    data_lost |= !data_wins;
    weights_lost |= !weights_wins || data_lost;
    if (!data_lost) data_from = int64_t{R} * R;
    if (!weights_lost) weights_from = int64_t{R} * R;
  }
  std::printf("winograd_wins data_from=%lld weights_from=%lld\n", static_cast<long long>(data_from),
              static_cast<long long>(weights_from));
  return 0;
}

}  // namespace
}  // namespace ddpm

int main(int argc, char** argv) {
  return ddpm::run_app("bench_conv", [&] { return ddpm::run(argc, argv); });
}
