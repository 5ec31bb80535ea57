#include "eval/rate_distortion.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/common.h"
#include "core/fs.h"
#include "core/h5.h"
#include "core/params.h"

namespace ddpm::eval {
namespace {

constexpr double kPixelScale = 127.5;  // [-1, 1] -> [0, 255]

std::string csv_rows(const std::vector<RateDistortionPoint>& rows) {
  std::string text = "reverse_steps,t,rate_bpd,distortion_rmse,distortion_rmse_of_mean\n";
  char line[160];
  for (const RateDistortionPoint& p : rows) {
    std::snprintf(line, sizeof(line), "%d,%d,%.6f,%.6f,%.6f\n", p.reverse_steps, p.t, p.rate_bpd, p.rmse_mean,
                  p.rmse_of_mean);
    text += line;
  }
  return text;
}

}  // namespace

RateDistortion rate_distortion(const std::string& bpd_path) {
  const h5::File f = h5::File::open_read(bpd_path);
  for (const char* name : {"prior_bpd", "terms_bpd", "mse"}) {
    if (!f.has_dataset(name)) f.fail(cat("has no '", name, "' (not written by ddpm_eval bpd?)"));
  }
  const h5::DatasetInfo prior_info = f.info("prior_bpd"), terms_info = f.info("terms_bpd");
  if (prior_info.shape.size() != 1 || terms_info.shape.size() != 2 || terms_info.shape[0] != prior_info.shape[0] ||
      terms_info.shape[1] < 2 || f.info("mse").shape != terms_info.shape) {
    f.fail(cat("prior_bpd ", shape_to_string(prior_info.shape), ", terms_bpd ", shape_to_string(terms_info.shape),
               " and mse ", shape_to_string(f.info("mse").shape), " are not [N], [N, T], [N, T]"));
  }
  const int64_t N = prior_info.shape[0];
  if (N < 1 || terms_info.shape[1] > 1000000) f.fail("holds no images or an absurd T");
  const int T = static_cast<int>(terms_info.shape[1]);
  std::vector<double> prior(N), terms(N * T), mse(N * T);
  f.read_f64("prior_bpd", prior.data(), N);
  f.read_f64("terms_bpd", terms.data(), N * T);
  f.read_f64("mse", mse.data(), N * T);

  RateDistortion rd;
  rd.images = N, rd.T = T;
  std::vector<double> rate(prior);  // per image: what x_t has cost so far
  for (int t = T - 1; t >= 0; --t) {
    RateDistortionPoint p;
    p.t = t, p.reverse_steps = T - t;
    double rate_sum = 0, rmse_sum = 0, mse_sum = 0;
    for (int64_t n = 0; n < N; ++n) {
      if (t + 1 < T) rate[n] += terms[n * T + t + 1];  // the KL term that sent x_t
      const double e = mse[n * T + t];
      if (!(e >= 0) || !std::isfinite(rate[n])) f.fail(cat("image ", n, ", t ", t, ": a negative or non-finite value"));
      rate_sum += rate[n];
      rmse_sum += kPixelScale * std::sqrt(e);
      mse_sum += e;
    }
    p.rate_bpd = rate_sum / static_cast<double>(N);
    p.rmse_mean = rmse_sum / static_cast<double>(N);
    p.rmse_of_mean = kPixelScale * std::sqrt(mse_sum / static_cast<double>(N));
    rd.points.push_back(p);
  }
  return rd;
}

void write_rate_distortion_csv(const RateDistortion& rd, const std::string& dir) {
  fs::make_dirs(dir);
  fs::write_text_atomic(fs::join(dir, "rate_distortion.csv"), csv_rows(rd.points));
  fs::write_text_atomic(fs::join(dir, "table4.csv"), csv_rows(table4_rows(rd)));
}

std::vector<RateDistortionPoint> table4_rows(const RateDistortion& rd) {
  std::vector<RateDistortionPoint> rows;
  for (int k = 10; k >= 1; --k) {
    const int steps = std::max(1, static_cast<int>(std::lround(rd.T * k / 10.0)));
    rows.push_back(rd.points[steps - 1]);  // points[i] took i + 1 reverse steps
  }
  return rows;
}

}  // namespace ddpm::eval
