#include "train/training_fid.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vector>

#include "core/backend.h"
#include "core/common.h"
#include "core/config.h"
#include "core/fs.h"
#include "core/sampler.h"
#include "core/unet.h"
#include "data/checksum.h"
#include "dist/world.h"
#include "eval/image_set.h"
#include "io/image_out.h"

namespace ddpm {
namespace {

constexpr int kInceptionBatch = 50;

// A CRC-32 of what a reference holds: a file's bytes, or a folder's listing (every
// file's path, size and modification time), so that new or changed images show.
std::string content_fingerprint(const std::string& path) {
  namespace sfs = std::filesystem;
  uint32_t crc = 0;
  uint64_t bytes = 0;
  if (sfs::is_directory(path)) {
    std::vector<std::string> listing;
    for (const auto& e : sfs::recursive_directory_iterator(path)) {
      if (!e.is_regular_file()) continue;
      const auto mtime = e.last_write_time().time_since_epoch().count();
      listing.push_back(cat(sfs::relative(e.path(), path).string(), " ", e.file_size(), " ", mtime, "\n"));
    }
    std::sort(listing.begin(), listing.end());
    for (const std::string& line : listing) crc = data::crc32_of(line.data(), line.size(), crc);
    return cat(listing.size(), " files, listing crc32 ", crc);
  }
  std::ifstream in(path, std::ios::binary);
  std::vector<char> block(1 << 20);
  while (in.read(block.data(), static_cast<std::streamsize>(block.size())) || in.gcount() > 0) {
    crc = data::crc32_of(block.data(), static_cast<size_t>(in.gcount()), crc);
    bytes += static_cast<uint64_t>(in.gcount());
  }
  if (in.bad()) input_error("train.fid_ref: ", path, ": cannot read");
  return cat(bytes, " bytes, crc32 ", crc);
}

// A statistics file (mu, sigma) rather than images.
bool is_stats_file(const std::string& path) {
  if (fs::is_dir(path)) return false;
  const NpzReader npz(path);
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

TrainingFid::TrainingFid(const RunContext& run, const std::string& run_dir) : run_(run), run_dir_(run_dir) {
  const TrainConfig& tc = run.config.train;
  if (!fs::exists(tc.fid_ref)) input_error("train.fid_ref: ", tc.fid_ref, ": no such file or directory");
  const std::string weights = eval::find_inception_weights(tc.fid_inception, "train.fid_inception");
  if (run.ops.precision() != Precision::kFp32) {
    DeviceConfig fp32 = run.config.device;
    fp32.precision = precision_name(Precision::kFp32);
    fp32_ops_ = make_backend(fp32, run.world.local_rank(), 0);
  }
  evaluator_ = std::make_unique<eval::InceptionEvaluator>(fp32_ops_ ? *fp32_ops_ : run.ops, weights,
                                                          eval::InceptionResize::kTf, kInceptionBatch);
  // Every rank, at setup: a mismatch is one agreed error, not an abort at step fid_every.
  if (is_stats_file(tc.fid_ref)) {
    const std::string note =
        eval::check_provenance(eval::read_stats_provenance(tc.fid_ref), evaluator_->provenance(), tc.fid_ref);
    if (!note.empty() && run.world.is_root()) std::fprintf(stderr, "ddpm_train: train.fid_ref: %s\n", note.c_str());
  }
}

std::string TrainingFid::cache_path() const {
  const TrainConfig& tc = run_.config.train;
  const eval::StatsProvenance p = evaluator_->provenance();
  const std::string key = cat(tc.fid_ref, " (", content_fingerprint(tc.fid_ref), "), resize ", p.resize,
                              ", weights sha256 ", p.weights_sha256, ", fp32, fid_num ", tc.fid_num);
  char name[32];
  std::snprintf(name, sizeof(name), "fid_ref-%08x.npz", static_cast<unsigned>(data::crc32_of(key.data(), key.size())));
  return fs::join(run_dir_, name);
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
  const int64_t dim = eval::FidInception::kFeatures;
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
  std::string cache;
  if (world.is_root() && reference_.dim == 0) {
    if (is_stats_file(ref)) {
      reference_ = eval::read_fid_stats(ref);  // its provenance checked at setup
    } else if (cache = cache_path(); fs::exists(cache)) {
      reference_ = eval::read_fid_stats(cache);
      (void)eval::check_provenance(reference_.provenance, evaluator_->provenance(), cache);  // ours: always known
    }
  }
  if (world.is_root()) known = reference_.dim > 0;
  world.broadcast(&known, 1);
  if (known) return reference_;
  const std::unique_ptr<eval::ImageSet> images = eval::open_image_set(ref);
  const Share share = share_of(world, images->size());
  ImageRange mine(*images, share.first, share.count);
  const eval::FeatureMatrix features = gather_pool3(mine, images->size(), beat);
  if (world.is_root()) {
    reference_ = eval::feature_stats(features.rows());
    reference_.provenance = evaluator_->provenance(features.count);
    eval::write_fid_stats(cache, reference_, Overwrite::kReplace);
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
  const int64_t per_example = mc.values_per_image();
  const int chunk = std::max(1, run_.local_batch);
  std::vector<float> x(static_cast<size_t>(chunk * per_example));
  std::vector<uint8_t> pixels(static_cast<size_t>(share.count * per_example));
  for (int64_t done = 0; done < share.count;) {
    const int n = static_cast<int>(std::min<int64_t>(chunk, share.count - done));
    sampler.sample(weights, share.first + done, n, x.data(), nullptr, [&](int, int) { beat(); });
    const std::vector<uint8_t> bytes = to_uint8(x.data(), n * per_example, Quantize::kTruncate);
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
