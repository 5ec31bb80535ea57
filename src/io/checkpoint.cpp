#include "io/checkpoint.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "core/fs.h"
#include "core/h5.h"
#include "io/weights_io.h"

namespace ddpm {
namespace {

constexpr const char* kGroups[] = {"params", "ema", "optimizer/m", "optimizer/v"};

float* buffer_for(const TrainBuffers& b, const std::string& group) {
  if (group == "params") return b.params;
  if (group == "ema") return b.ema;
  if (group == "optimizer/m") return b.m;
  return b.v;
}

// The step of "ckpt-00001234.h5", or -1.
int64_t step_of(const std::string& name) {
  long long step = -1;
  char tail[8] = {0};
  if (name.size() != 16 || std::sscanf(name.c_str(), "ckpt-%8lld%4s", &step, tail) != 2) return -1;
  return std::string(tail) == ".h5" ? step : -1;
}

}  // namespace

std::string checkpoint_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "ckpt-%08lld.h5", static_cast<long long>(step));
  return buf;
}

std::vector<std::string> list_checkpoints(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      const int64_t step = step_of(e->d_name);
      if (step >= 0) found.emplace_back(step, e->d_name);
    }
    closedir(d);
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::string> paths;
  const std::string latest_file = fs::join(dir, "latest");
  if (fs::exists(latest_file)) {
    std::string name = fs::read_text(latest_file);
    while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
    if (step_of(name) >= 0 && fs::exists(fs::join(dir, name))) paths.push_back(fs::join(dir, name));
  }
  for (const auto& [step, name] : found) {
    const std::string p = fs::join(dir, name);
    if (paths.empty() || paths.front() != p) paths.push_back(p);
  }
  return paths;
}

int remove_unfinished_checkpoints(const std::string& dir) {
  std::vector<std::string> doomed;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      const bool tmp = name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0;
      if (tmp && (name == "latest.tmp" || step_of(name.substr(0, name.size() - 4)) >= 0)) doomed.push_back(name);
    }
    closedir(d);
  }
  for (const std::string& name : doomed) unlink(fs::join(dir, name).c_str());
  return static_cast<int>(doomed.size());
}

std::string write_checkpoint(const std::string& dir, const ModelConfig& model, const ParamLayout& layout,
                             const TrainBuffers& buffers, const TrainState& state, int keep,
                             const std::function<void()>& before_commit) {
  fs::make_dirs(dir);
  const std::string name = checkpoint_name(state.step);
  const std::string path = fs::join(dir, name);
  fs::write_atomically(path, [&](const std::string& tmp) {
    h5::File f = h5::File::create_checksummed(tmp);
    f.write_attr_str_fixed("/", "format", kCheckpointFormat);
    f.write_attr_i64("/", "format_version", kWeightsFormatVersion);
    f.write_attr_i64("/", "step", state.step);
    f.write_attr_i64("/", "iteration", state.iteration);
    f.write_attr_str_fixed("/", "config", state.config_yaml);
    f.write_attr_str_fixed("/", "model_config", model.to_yaml());
    f.write_attr_i64("/", "world_size", state.world_size);
    f.write_attr_i64("/", "data_epoch", state.data_epoch);
    f.write_attr_i64("/", "data_position", state.data_position);
    f.write_attr_i64("/", "dataset_checksum", state.dataset_checksum);
    f.write_attr_i64("/", "nonfinite_skips", state.nonfinite_skips);
    f.create_group("optimizer");
    for (const char* group : kGroups) write_param_group(f, group, layout, buffer_for(buffers, group));
    f.close();
    if (before_commit) before_commit();
  });
  fs::write_text_atomic(fs::join(dir, "latest"), name + "\n");
  // Keep the newest `keep` (by step), never the one just written.
  std::vector<std::string> all = list_checkpoints(dir);
  std::sort(all.begin(), all.end(), [](const std::string& a, const std::string& b) {
    return step_of(fs::basename(a)) > step_of(fs::basename(b));
  });
  for (size_t i = static_cast<size_t>(std::max(keep, 1)); i < all.size(); ++i) {
    if (all[i] != path) unlink(all[i].c_str());
  }
  return path;
}

TrainState read_checkpoint(const std::string& path, const ParamLayout& layout, const TrainBuffers& buffers) {
  const h5::File f = h5::File::open_read_checksummed(path, "an older ddpm wrote it? rewrite it with tools/rewrite_hdf5.py");
  if (!f.has_attr("/", "format") || f.read_attr_str("/", "format") != kCheckpointFormat) {
    f.fail("not a ddpm training checkpoint (no format attribute 'ddpm-checkpoint')");
  }
  if (f.read_attr_i64("/", "format_version") > kWeightsFormatVersion) {
    f.fail(cat("written by a newer ddpm (format_version ", f.read_attr_i64("/", "format_version"), ")"));
  }
  TrainState s;
  s.step = f.read_attr_i64("/", "step");
  s.iteration = f.read_attr_i64("/", "iteration");
  s.config_yaml = f.read_attr_str("/", "config");
  s.world_size = f.read_attr_i64("/", "world_size");
  s.data_epoch = f.read_attr_i64("/", "data_epoch");
  s.data_position = f.read_attr_i64("/", "data_position");
  s.dataset_checksum = f.read_attr_i64("/", "dataset_checksum");
  s.nonfinite_skips = f.read_attr_i64("/", "nonfinite_skips");
  if (s.step < 0 || s.iteration < s.step || s.data_epoch < 0 || s.data_position < 0) {
    f.fail("inconsistent step, iteration or data cursor");
  }
  for (const char* group : kGroups) {
    if (float* dst = buffer_for(buffers, group)) read_param_group(f, group, layout, dst);
  }
  return s;
}

}  // namespace ddpm
