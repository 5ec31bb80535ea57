#include "eval/fid.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "core/clock.h"
#include "core/common.h"
#include "core/fs.h"

namespace ddpm::eval {

std::string find_inception_weights(const std::string& given, const std::string& option) {
  std::string path = given;
  const char* env = std::getenv("DDPM_INCEPTION");
  const char* home = std::getenv("HOME");
  if (path.empty() && env != nullptr && *env != '\0') path = env;
  if (path.empty() && home != nullptr) path = std::string(home) + "/.cache/ddpm/inception-2015-12-05.h5";
  if (path.empty() || !fs::exists(path)) {
    input_error(path.empty() ? "no Inception weights" : path + ": no Inception weights there",
                "; on a connected machine download pytorch-fid's pt_inception-2015-12-05-6726825d.pth, convert it "
                "with python3 tools/convert_inception.py IN.pth OUT.h5 and give ", option, " OUT.h5 or set "
                "DDPM_INCEPTION (docs/evaluation.md)");
  }
  return path;
}

InceptionEvaluator::InceptionEvaluator(Ops& ops, const std::string& weights_path, InceptionResize resize, int batch)
    : ops_(ops), resize_(resize), batch_(batch), weights_(ops, net_.layout().size()) {
  if (batch < 1 || batch > 4096) input_error("--batch must be in [1, 4096]");
  HostFloats host = alloc_host_floats(net_.layout().size());
  weights_source_ = read_inception_weights(weights_path, net_.layout(), host.get());
  weights_.load(host.get());
  const ParamInfo* bias = net_.layout().find("fc.bias");
  if (bias == nullptr) throw Error("FidInception: no fc.bias in its layout");
  classifier_bias_.assign(host.get() + bias->offset, host.get() + bias->offset + bias->numel);
  const int64_t S = FidInception::kSpatialSize;
  input_ = Buffer(ops, int64_t{batch} * kInceptionInputSize * kInceptionInputSize * 3);
  pool3_ = Buffer(ops, int64_t{batch} * FidInception::kFeatures);
  logits_ = Buffer(ops, int64_t{batch} * FidInception::kClasses);
  spatial_ = Buffer(ops, int64_t{batch} * S * S * FidInception::kSpatialChannels);
}

namespace {

// Appends the first n rows of `rows` (dim floats each) to m.
void append_rows(FeatureMatrix& m, const std::vector<float>& rows, int n) {
  m.values.insert(m.values.end(), rows.begin(), rows.begin() + n * m.dim);
  m.count += n;
}

}  // namespace

FeatureRun InceptionEvaluator::run(ImageSet& images, int64_t num, const FeatureRequest& request,
                                   const std::string& label) {
  const int64_t total = num > 0 ? std::min(num, images.size()) : images.size();
  if (num > images.size()) input_error(images.path(), ": --num ", num, " but it holds ", images.size(), " images");
  const int64_t spatial_dim =
      int64_t{FidInception::kSpatialSize} * FidInception::kSpatialSize * FidInception::kSpatialChannels;
  FeatureStatsAccumulator stats(FidInception::kFeatures), spatial_stats(spatial_dim);
  FeatureRun result;
  result.logits.dim = FidInception::kClasses;
  result.pool3_rows.dim = FidInception::kFeatures;
  const int64_t pixels = int64_t{kInceptionInputSize} * kInceptionInputSize * 3;
  std::vector<float> host_input(static_cast<size_t>(batch_ * pixels)), host_pool3(batch_ * FidInception::kFeatures),
      host_logits(batch_ * FidInception::kClasses), host_spatial(batch_ * spatial_dim);
  data::Image image;
  const bool tty = isatty(STDERR_FILENO);
  const double t0 = now_seconds();
  double last_report = t0;
  for (int64_t done = 0; done < total;) {
    int n = 0;
    while (n < batch_ && done + n < total && images.next(&image)) {
      inception_input(host_input.data() + n * pixels, image.pixels.data(), image.height, image.width, image.channels,
                      resize_);
      ++n;
    }
    if (n == 0) input_error(images.path(), ": ended after ", done, " images");
    ops_.upload(input_.get(), host_input.data(), n * pixels);
    net_.prepare(ops_, n);
    Pass ps;
    ps.ops = &ops_, ps.params = weights_.get(), ps.version = weights_.version(), ps.N = n;
    net_.forward(ps, {pool3_.get(), logits_.get(), spatial_.get()}, input_.get());
    ops_.download(host_pool3.data(), pool3_.get(), n * FidInception::kFeatures);
    if (request.pool3_stats) stats.add({host_pool3.data(), n, FidInception::kFeatures});
    if (request.pool3_rows) append_rows(result.pool3_rows, host_pool3, n);
    if (request.logits) {
      ops_.download(host_logits.data(), logits_.get(), n * FidInception::kClasses);
      for (int i = 0; i < n; ++i) {
        for (int c = 0; c < FidInception::kClasses; ++c) host_logits[i * FidInception::kClasses + c] -= classifier_bias_[c];
      }
      append_rows(result.logits, host_logits, n);
    }
    if (request.spatial_stats) {
      ops_.download(host_spatial.data(), spatial_.get(), n * spatial_dim);
      spatial_stats.add({host_spatial.data(), n, spatial_dim});
    }
    done += n;
    if (request.progress) {
      request.progress(done, total);
      continue;
    }
    const double now = now_seconds();
    if (done == total || (tty ? now - last_report > 0.5 : now - last_report > 30)) {
      last_report = now;
      const double rate = static_cast<double>(done) / std::max(now - t0, 1e-9);
      std::fprintf(stderr, "%sddpm_eval: %s: %lld/%lld images, %.1f img/s, ETA %.0f s%s", tty ? "\r\033[K" : "",
                   label.c_str(), static_cast<long long>(done), static_cast<long long>(total), rate,
                   static_cast<double>(total - done) / rate, tty && done < total ? "" : "\n");
    }
  }
  result.images = total;
  if (request.pool3_stats) result.pool3 = stats.stats();
  if (request.spatial_stats) result.spatial = spatial_stats.stats();
  result.pool3.provenance = result.spatial.provenance = provenance(total);
  return result;
}

StatsProvenance InceptionEvaluator::provenance(int64_t images) const {
  StatsProvenance p;
  p.resize = inception_resize_name(resize_);
  p.weights_sha256 = weights_source_.sha256;
  p.images = images;
  return p;
}

std::string InceptionEvaluator::describe() const {
  return cat("resize ", inception_resize_name(resize_), ", ", weights_source_.describe());
}

FeatureStats fid_operand_stats(InceptionEvaluator& evaluator, const std::string& path, int64_t num) {
  if (!fs::is_dir(path) && fs::exists(path)) {
    const NpzReader npz(path);
    if (npz.contains("mu") && npz.contains("sigma")) {
      FeatureStats stats = read_fid_stats(path);
      const std::string note = check_provenance(stats.provenance, evaluator.provenance(), path);
      if (!note.empty()) std::fprintf(stderr, "ddpm_eval: %s\n", note.c_str());
      return stats;
    }
  }
  const std::unique_ptr<ImageSet> images = open_image_set(path);
  return evaluator.run(*images, num, {}, path).pool3;
}

}  // namespace ddpm::eval
