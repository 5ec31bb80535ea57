// Times frechet_distance (eval/frechet.h: LAPACK's dsyevd and OpenBLAS's products) on two
// statistics files, as bench/frechet_vs_scipy.sh runs it beside scipy's sqrtm.
//   bench_frechet A.npz B.npz [REPEATS]
// Prints one line per repetition and, last, `frechet value=V median_s=S min_s=S`.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "apps/cli.h"
#include "core/clock.h"
#include "core/common.h"
#include "eval/frechet.h"

int main(int argc, char** argv) {
  return ddpm::run_app("bench_frechet", [&]() -> int {
    if (argc < 3) ddpm::input_error("usage: bench_frechet A.npz B.npz [REPEATS]");
    const int repeats = argc > 3 ? std::max(1, std::atoi(argv[3])) : 3;
    const ddpm::eval::FeatureStats a = ddpm::eval::read_fid_stats(argv[1]), b = ddpm::eval::read_fid_stats(argv[2]);
    std::vector<double> seconds;
    double value = 0;
    for (int r = 0; r < repeats; ++r) {
      const double t0 = ddpm::now_seconds();
      value = ddpm::eval::frechet_distance(a, b);
      seconds.push_back(ddpm::now_seconds() - t0);
      std::printf("run %d: %.3f s\n", r + 1, seconds.back());
    }
    std::sort(seconds.begin(), seconds.end());
    std::printf("frechet value=%.15g median_s=%.3f min_s=%.3f\n", value, seconds[seconds.size() / 2], seconds.front());
    return 0;
  });
}
