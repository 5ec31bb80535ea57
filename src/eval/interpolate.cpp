#include "eval/interpolate.h"

#include <cstdio>
#include <cstdlib>

#include "core/backend.h"
#include "core/buffer.h"
#include "core/common.h"
#include "core/diffusion.h"
#include "core/diffusion_ops.h"
#include "core/fs.h"
#include "core/rng.h"
#include "core/sampler.h"
#include "core/unet.h"
#include "data/shard_reader.h"
#include "eval/source_images.h"
#include "io/image_out.h"
#include "io/model_source.h"

namespace ddpm::eval {

std::vector<std::pair<int64_t, int64_t>> parse_pairs(const std::string& text) {
  std::vector<std::pair<int64_t, int64_t>> pairs;
  size_t at = 0;
  while (at <= text.size()) {
    const size_t end = std::min(text.find(',', at), text.size());
    const std::string item = text.substr(at, end - at);
    const size_t colon = item.find(':');
    char* rest = nullptr;
    const long long a = colon == std::string::npos ? -1 : std::strtoll(item.c_str(), &rest, 10);
    const bool a_ok = colon != std::string::npos && rest == item.c_str() + colon && colon > 0;
    const long long b = a_ok ? std::strtoll(item.c_str() + colon + 1, &rest, 10) : -1;
    if (!a_ok || *rest != '\0' || colon + 1 == item.size() || a < 0 || b < 0) {
      input_error("--pairs '", text, "': expected I:J[,I:J...] with image indices, got '", item, "'");
    }
    pairs.emplace_back(a, b);
    at = end + 1;
  }
  return pairs;
}

void interpolate(const ModelSource& source, const InterpolationJob& job) {
  data::DatasetReader dataset(job.data_dir);
  const ModelConfig& mc = source.config.model;
  require_model_shape(dataset, job.data_dir, source);
  const Diffusion diffusion(source.config.diffusion);
  if (job.t < 0 || job.t >= diffusion.num_timesteps()) {
    input_error("--t ", job.t, " is outside [0, ", diffusion.num_timesteps(), ")");
  }
  if (job.lambdas < 2 || job.lambdas > 64) input_error("--lambdas must be in [2, 64]");
  for (const auto& [i, j] : job.pairs) {
    if (i >= dataset.count() || j >= dataset.count()) {
      input_error(job.data_dir, ": pair ", i, ":", j, " names an image past the dataset's ", dataset.count());
    }
  }
  auto ops = make_backend(source.config.device, 0, 0);
  UNet net(mc);
  SamplerOptions so;  // ancestral from t, as the paper decodes
  so.seed = job.seed;
  Sampler sampler(net, *ops, diffusion, so);
  ParamBuffer weights(*ops, net.layout().size());
  weights.load(source.weights.get());
  fs::make_dirs(job.out_dir);

  const int R = mc.resolution, C = mc.in_channels, L = job.lambdas;
  const int64_t img = mc.values_per_image();
  std::vector<uint8_t> pixels(2 * img), row;
  std::vector<float> x0(2 * img), noise(2 * img), x_t(2 * img), mixes(L * img);
  const Buffer staging(*ops, 2 * img);
  const std::vector<int> t2{job.t, job.t};
  for (size_t p = 0; p < job.pairs.size(); ++p) {
    const auto [i, j] = job.pairs[p];
    dataset.read(i, pixels.data());
    dataset.read(j, pixels.data() + img);
    ops->diffusion().images_to_model(staging.get(), pixels.data(), 2 * img);  // the training normalisation
    ops->download(x0.data(), staging.get(), 2 * img);
    for (int side = 0; side < 2; ++side) {
      normal_fill(noise.data() + side * img, img, job.seed, Purpose::kSample, kSampleEncodeNoise,
                  static_cast<uint32_t>(job.t), static_cast<uint32_t>(2 * p + side));
    }
    host_diffusion_ops().q_sample(diffusion.table(), x_t.data(), x0.data(), noise.data(), t2.data(), 2, img);
    for (int k = 0; k < L; ++k) {
      const float lambda = static_cast<float>(k) / static_cast<float>(L - 1);
      for (int64_t e = 0; e < img; ++e) mixes[k * img + e] = (1.0f - lambda) * x_t[e] + lambda * x_t[img + e];
    }
    sampler.denoise_shared_noise(weights, job.t, static_cast<uint32_t>(p), L, mixes.data());
    row.assign(pixels.begin(), pixels.begin() + img);  // source, the mixes, the other source
    const std::vector<uint8_t> decoded = to_uint8(mixes.data(), L * img, Quantize::kTruncate);
    row.insert(row.end(), decoded.begin(), decoded.end());
    row.insert(row.end(), pixels.begin() + img, pixels.end());
    int gh = 0, gw = 0;
    const std::vector<uint8_t> grid = make_grid(row.data(), L + 2, R, R, C, L + 2, 2, &gh, &gw);
    const std::string path = fs::join(job.out_dir, cat("pair_", i, "_", j, ".png"));
    write_png(path, grid.data(), gh, gw, C);
    std::fprintf(stderr, "ddpm_eval interpolate: %s (t = %d, %d mixes)\n", path.c_str(), job.t, L);
  }
}

}  // namespace ddpm::eval
