#include "train/training_fid.h"

#include <cmath>
#include <cstdio>
#include <vector>

#include "core/common.h"
#include "core/config.h"
#include "core/fs.h"
#include "core/sampler.h"
#include "core/unet.h"
#include "data/checksum.h"
#include "dist/world.h"
#include "eval/image_set.h"
#include "train/image_out.h"

namespace ddpm {
namespace {

constexpr int kInceptionBatch = 50;

std::string reference_cache(const std::string& run_dir, const std::string& ref) {
  char name[32];
  std::snprintf(name, sizeof(name), "fid_ref-%08x.npz", static_cast<unsigned>(data::crc32_of(ref.data(), ref.size())));
  return fs::join(run_dir, name);
}

// A statistics file (mu, sigma) rather than images.
bool is_stats_file(const std::string& path) {
  if (fs::is_dir(path)) return false;
  const eval::NpzReader npz(path);
  return npz.contains("mu") && npz.contains("sigma");
}

// This rank's share of `total` items: [first, first + count).
struct Share {
  int64_t first = 0, count = 0, per_rank = 0;
};

Share share_of(const World& world, int64_t total) {
  Share s;
  s.per_rank = (total + world.size() - 1) / world.size();
  s.first = std::min(total, s.per_rank * world.rank());
  s.count = std::min(total, s.first + s.per_rank) - s.first;
  return s;
}

// Images [first, first + count) of a set read in order.
class ImageRange final : public eval::ImageSet {
 public:
  ImageRange(eval::ImageSet& set, int64_t first, int64_t count) : ImageSet(set.path()), set_(set), count_(count) {
    data::Image skipped;
    for (int64_t i = 0; i < first; ++i) {
      if (!set_.next(&skipped)) input_error(set.path(), ": ended after ", i, " images");
    }
  }
  int64_t size() const override { return count_; }
  bool next(data::Image* image) override { return read_ < count_ && set_.next(image) && ++read_ > 0; }

 private:
  eval::ImageSet& set_;
  int64_t count_, read_ = 0;
};

}  // namespace

TrainingFid::TrainingFid(const RunContext& run, const std::string& run_dir)
    : run_(run), cache_path_(reference_cache(run_dir, run.config.train.fid_ref)) {
  const TrainConfig& tc = run.config.train;
  if (!fs::exists(tc.fid_ref)) input_error("train.fid_ref: ", tc.fid_ref, ": no such file or directory");
  const std::string weights = eval::find_inception_weights(tc.fid_inception, "train.fid_inception");
  evaluator_ = std::make_unique<eval::InceptionEvaluator>(run.ops, weights, InceptionResize::kTf, kInceptionBatch);
}

TrainingFid::~TrainingFid() = default;

eval::FeatureMatrix TrainingFid::gather_pool3(eval::ImageSet& mine, int64_t total, const std::function<void()>& beat) {
  const World& world = run_.world;
  const Share share = share_of(world, total);
  if (mine.size() != share.count) throw Error(cat("TrainingFid: a share of ", mine.size(), " images, not ", share.count));
  eval::FeatureRequest request;
  request.pool3_stats = false;
  request.pool3_rows = true;
  request.progress = [&](int64_t, int64_t) { beat(); };
  eval::FeatureRun run = evaluator_->run(mine, 0, request, mine.path());
  const int64_t dim = FidInception::kFeatures;
  run.pool3_rows.values.resize(static_cast<size_t>(share.per_rank * dim));  // equal blocks for the gather
  eval::FeatureMatrix all;
  if (world.is_root()) all.values.resize(static_cast<size_t>(share.per_rank * world.size() * dim));
  world.gather(all.values.data(), run.pool3_rows.values.data(), share.per_rank * dim);
  if (!world.is_root()) return {};
  all.values.resize(static_cast<size_t>(total * dim));
  all.count = total, all.dim = dim;
  return all;
}

const eval::FeatureStats& TrainingFid::reference_stats(const std::function<void()>& beat) {
  const World& world = run_.world;
  const std::string& ref = run_.config.train.fid_ref;
  int64_t known = 0;
  if (world.is_root()) {
    if (reference_.dim == 0 && is_stats_file(ref)) reference_ = eval::read_fid_stats(ref);
    if (reference_.dim == 0 && fs::exists(cache_path_)) reference_ = eval::read_fid_stats(cache_path_);
    known = reference_.dim > 0;
  }
  world.broadcast(&known, 1);
  if (known) return reference_;
  const std::unique_ptr<eval::ImageSet> images = eval::open_image_set(ref);
  const Share share = share_of(world, images->size());
  ImageRange mine(*images, share.first, share.count);
  const eval::FeatureMatrix features = gather_pool3(mine, images->size(), beat);
  if (world.is_root()) {
    reference_ = eval::feature_stats(features.rows());
    eval::write_fid_stats(cache_path_, reference_, eval::Overwrite::kReplace);
  }
  return reference_;
}

double TrainingFid::measure(const ParamBuffer& weights, UNet& sample_net, const std::function<void()>& beat) {
  const TrainConfig& tc = run_.config.train;
  const ModelConfig& mc = run_.config.model;
  const eval::FeatureStats& reference = reference_stats(beat);  // [2048, 2048]: not copied
  SamplerOptions so;
  so.kind = "ddim";
  so.steps = tc.fid_steps;
  so.seed = tc.seed;
  Sampler sampler(sample_net, run_.ops, run_.diffusion, so);
  const Share share = share_of(run_.world, tc.fid_num);
  const int64_t per_example = int64_t{mc.resolution} * mc.resolution * mc.in_channels;
  const int chunk = std::max(1, run_.local_batch);
  std::vector<float> x(static_cast<size_t>(chunk * per_example));
  std::vector<uint8_t> pixels(static_cast<size_t>(share.count * per_example));
  for (int64_t done = 0; done < share.count;) {
    const int n = static_cast<int>(std::min<int64_t>(chunk, share.count - done));
    sampler.sample(weights, share.first + done, n, x.data(), nullptr, [&](int, int) { beat(); });
    const std::vector<uint8_t> bytes = to_uint8(x.data(), n * per_example);
    std::copy(bytes.begin(), bytes.end(), pixels.begin() + done * per_example);
    done += n;
  }
  const std::unique_ptr<eval::ImageSet> mine = eval::memory_image_set(
      pixels.data(), share.count, mc.resolution, mc.resolution, mc.in_channels, "the FID samples");
  const eval::FeatureMatrix features = gather_pool3(*mine, tc.fid_num, beat);
  if (!run_.world.is_root()) return NAN;
  return eval::frechet_distance(eval::feature_stats(features.rows()), reference);
}

}  // namespace ddpm
