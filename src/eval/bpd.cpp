#include "eval/bpd.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/backend.h"
#include "core/buffer.h"
#include "core/clock.h"
#include "core/common.h"
#include "core/diffusion.h"
#include "core/diffusion_ops.h"
#include "core/rng.h"
#include "core/fs.h"
#include "core/h5.h"
#include "core/unet.h"
#include "data/shard_reader.h"
#include "eval/source_images.h"
#include "dist/world.h"
#include "io/model_source.h"

namespace ddpm::eval {
namespace {

// "1h02m", "3m05s", "12s"
std::string duration(double seconds) {
  const int64_t s = static_cast<int64_t>(std::max(0.0, seconds));
  char text[32];
  if (s >= 3600) std::snprintf(text, sizeof(text), "%lldh%02lldm", static_cast<long long>(s / 3600),
                               static_cast<long long>(s / 60 % 60));
  else if (s >= 60) std::snprintf(text, sizeof(text), "%lldm%02llds", static_cast<long long>(s / 60),
                                  static_cast<long long>(s % 60));
  else std::snprintf(text, sizeof(text), "%llds", static_cast<long long>(s));
  return text;
}

// Rank 0's progress over its model evaluations: a line on each change when stderr is a
// terminal, else one every 30 s (a log file of a days-long evaluation stays readable).
class Progress {
 public:
  Progress(bool show, int64_t total_calls) : show_(show), tty_(isatty(STDERR_FILENO)), total_(total_calls) {}
  void step(int64_t first, int64_t n, int64_t mine, int t) {
    ++done_;
    if (!show_) return;
    const double now = now_seconds(), elapsed = now - start_;
    if (!tty_ && now - last_ < 30 && done_ < total_) return;
    last_ = now;
    const double eta = elapsed / static_cast<double>(done_) * static_cast<double>(total_ - done_);
    std::fprintf(stderr, "%sddpm_eval bpd: images %lld-%lld of %lld (rank 0), t %d, %.1f%% in %s, ETA %s%s",
                 tty_ ? "\r\033[K" : "", static_cast<long long>(first), static_cast<long long>(first + n),
                 static_cast<long long>(mine), t, 100.0 * static_cast<double>(done_) / static_cast<double>(total_),
                 duration(elapsed).c_str(), duration(eta).c_str(), tty_ ? "" : "\n");
  }
  void finish() const {
    if (show_ && tty_) std::fprintf(stderr, "\n");
  }

 private:
  bool show_, tty_;
  int64_t total_, done_ = 0;
  double start_ = now_seconds(), last_ = 0;
};

void write_result(const std::string& path, const BpdJob& job, const ModelSource& source, const BpdResult& r,
                  int64_t N, int T) {
  fs::write_atomically(path, [&](const std::string& tmp) {
    h5::File out = h5::File::create(tmp);
    out.write_f64("total_bpd", r.total_bpd.data(), {N});
    out.write_f64("prior_bpd", r.prior_bpd.data(), {N});
    out.write_f64("terms_bpd", r.terms_bpd.data(), {N, T});
    out.write_f64("mse", r.mse.data(), {N, T});
    out.write_attr_str("/", "model", source.path);
    out.write_attr_str("/", "weights", source.group);
    out.write_attr_str("/", "data", job.data_dir);
    out.write_attr_i64("/", "seed", static_cast<int64_t>(job.seed));
    out.write_attr_str("/", "diffusion_config", source.config.to_yaml());
    out.close();
  });
}

}  // namespace

BpdSummary evaluate_bpd(World& world, const ModelSource& source, const BpdJob& job) {
  if (job.batch < 1 || job.batch > 65536) input_error("--batch must be in [1, 65536]");
  data::DatasetReader dataset(job.data_dir);
  const ModelConfig& mc = source.config.model;
  require_model_shape(dataset, job.data_dir, source);
  if (mc.out_ch != mc.in_channels) input_error(source.path, ": the bound needs a model with out_ch = in_channels");
  const int64_t num = job.num > 0 ? job.num : dataset.count();
  if (num > dataset.count()) {
    input_error(job.data_dir, ": --num ", num, " but the dataset has ", dataset.count(), " images");
  }
  if (num > (int64_t{1} << 31)) input_error("--num must be at most 2^31");
  const Diffusion diffusion(source.config.diffusion);
  const int T = diffusion.num_timesteps();
  const int W = world.size();
  const int64_t per_rank = (num + W - 1) / W;
  const int64_t first = std::min<int64_t>(num, world.rank() * per_rank);
  const int64_t mine = std::min<int64_t>(num, first + per_rank) - first;
  const int64_t img = mc.values_per_image();
  // Every rank fills its images' rows of the full arrays; a sum over ranks gathers them.
  if (static_cast<double>(num) * T > 1.0e9) input_error("--num ", num, " x T ", T, " terms is too many for one file");

  auto ops = make_backend(source.config.device, world.local_rank(), 0);
  UNet net(mc);
  ParamBuffer weights(*ops, net.layout().size());
  weights.load(source.weights.get());
  if (world.is_root()) {
    std::fprintf(stderr, "ddpm_eval bpd: %s (%s weights%s), %lld images of %s on %d rank(s), T = %d, %s %s\n",
                 source.path.c_str(), source.group.c_str(),
                 source.step >= 0 ? cat(", step ", source.step).c_str() : "", static_cast<long long>(num),
                 job.data_dir.c_str(), W, T, ops->name(), precision_name(ops->precision()));
  }

  BpdResult all;
  all.total_bpd.assign(static_cast<size_t>(num), 0.0);
  all.prior_bpd.assign(static_cast<size_t>(num), 0.0);
  all.terms_bpd.assign(static_cast<size_t>(num) * T, 0.0);
  all.mse.assign(static_cast<size_t>(num) * T, 0.0);
  const int64_t most = std::max<int64_t>(1, std::min(job.batch, mine));
  const Buffer x_dev(*ops, most * img), eps_dev(*ops, most * img), t_dev(*ops, most);
  std::vector<uint8_t> pixels(static_cast<size_t>(most * img));
  std::vector<float> x0(static_cast<size_t>(most * img)), t_float(static_cast<size_t>(most));
  Progress progress(world.is_root(), (mine + most - 1) / most * T);
  std::string my_error;  // a bad image met by one rank stops every rank with its message
  try {
    for (int64_t done = 0; done < mine; done += job.batch) {
      const int n = static_cast<int>(std::min<int64_t>(job.batch, mine - done));
      const int64_t base = first + done;  // global index of the batch's first image
      for (int i = 0; i < n; ++i) dataset.read(base + i, pixels.data() + i * img);
      ops->diffusion().images_to_model(x_dev.get(), pixels.data(), n * img);
      ops->download(x0.data(), x_dev.get(), n * img);
      net.prepare(*ops, n, PlanMode::kForwardOnly);
      auto model = [&](float* out, const float* x_t, const int* t, int N) {
        for (int i = 0; i < N; ++i) t_float[i] = static_cast<float>(t[i]);
        ops->upload(x_dev.get(), x_t, N * img);
        ops->upload(t_dev.get(), t_float.data(), N);
        Pass ps;
        ps.ops = ops.get(), ps.params = weights.get(), ps.version = weights.version(), ps.N = N;
        net.forward(ps, eps_dev.get(), x_dev.get(), t_dev.get());
        ops->download(out, eps_dev.get(), N * img);
        progress.step(done, n, mine, t[0]);
      };
      auto noise = [&](float* eps, int t, int N) {
        for (int i = 0; i < N; ++i) {
          normal_fill(eps + i * img, img, job.seed, Purpose::kBound, 0, static_cast<uint32_t>(t),
                      static_cast<uint32_t>(base + i));
        }
      };
      const BpdResult r = diffusion.calc_bpd_loop(x0.data(), n, img, model, noise);
      std::copy(r.total_bpd.begin(), r.total_bpd.end(), all.total_bpd.begin() + base);
      std::copy(r.prior_bpd.begin(), r.prior_bpd.end(), all.prior_bpd.begin() + base);
      std::copy(r.terms_bpd.begin(), r.terms_bpd.end(), all.terms_bpd.begin() + base * T);
      std::copy(r.mse.begin(), r.mse.end(), all.mse.begin() + base * T);
    }
  } catch (const InputError& e) {
    my_error = e.what();
  }
  progress.finish();
  const std::string error = world.agree_on_error(my_error);
  if (!error.empty()) input_error(error);
  for (std::vector<double>* v : {&all.total_bpd, &all.prior_bpd, &all.terms_bpd, &all.mse}) {
    for (size_t at = 0; at < v->size(); at += size_t{1} << 28) {  // MPI counts are ints
      world.sum(v->data() + at, static_cast<int>(std::min(v->size() - at, size_t{1} << 28)));
    }
  }

  BpdSummary s;
  s.images = num;
  double sum_sq = 0;
  for (int64_t i = 0; i < num; ++i) {
    s.total += all.total_bpd[i];
    sum_sq += all.total_bpd[i] * all.total_bpd[i];
    s.prior += all.prior_bpd[i];
    s.decoder += all.terms_bpd[i * T];
    for (int t = 1; t < T; ++t) s.kl += all.terms_bpd[i * T + t];
  }
  const double n = static_cast<double>(num);
  s.total /= n, s.prior /= n, s.decoder /= n, s.kl /= n;
  // The sample standard deviation over images, divided by sqrt(N).
  const double var = num > 1 ? std::max(0.0, (sum_sq - n * s.total * s.total) / (n - 1)) : 0.0;
  s.total_stderr = std::sqrt(var / n);
  if (world.is_root()) write_result(job.out_path, job, source, all, num, T);
  world.barrier();
  return s;
}

}  // namespace ddpm::eval
