#include "core/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "core/common.h"
#include "core/fs.h"

namespace ddpm {
namespace {

// --- conversions from YAML with errors that name the key ---------------------------

std::string show(const YAML::Node& n) {
  if (n.IsScalar()) return "'" + n.Scalar() + "'";
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a mapping";
  return "nothing";
}

template <typename T>
T convert(const YAML::Node& n, const std::string& where);

template <>
int64_t convert<int64_t>(const YAML::Node& n, const std::string& where) {
  if (!n.IsScalar()) input_error(where, ": expected an integer, got ", show(n));
  const std::string& s = n.Scalar();
  try {
    size_t used = 0;
    const long long v = std::stoll(s, &used, 10);
    if (used == s.size()) return v;
  } catch (const std::exception&) {
  }
  // Accept integral floats written as 1e4 or 800000.0.
  try {
    size_t used = 0;
    const double d = std::stod(s, &used);
    if (used == s.size() && std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) return static_cast<int64_t>(d);
  } catch (const std::exception&) {
  }
  input_error(where, ": expected an integer, got ", show(n));
}

template <>
int convert<int>(const YAML::Node& n, const std::string& where) {
  const int64_t v = convert<int64_t>(n, where);
  if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) {
    input_error(where, ": ", v, " is out of range");
  }
  return static_cast<int>(v);
}

template <>
uint64_t convert<uint64_t>(const YAML::Node& n, const std::string& where) {
  const int64_t v = convert<int64_t>(n, where);
  if (v < 0) input_error(where, ": expected a non-negative integer, got ", v);
  return static_cast<uint64_t>(v);
}

template <>
double convert<double>(const YAML::Node& n, const std::string& where) {
  if (!n.IsScalar()) input_error(where, ": expected a number, got ", show(n));
  try {
    size_t used = 0;
    const double v = std::stod(n.Scalar(), &used);
    if (used == n.Scalar().size() && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  input_error(where, ": expected a number, got ", show(n));
}

template <>
bool convert<bool>(const YAML::Node& n, const std::string& where) {
  if (n.IsScalar()) {
    std::string s = n.Scalar();
    std::transform(s.begin(), s.end(), s.begin(), ::tolower);
    if (s == "true" || s == "yes" || s == "on" || s == "1") return true;
    if (s == "false" || s == "no" || s == "off" || s == "0") return false;
  }
  input_error(where, ": expected true or false, got ", show(n));
}

template <>
std::string convert<std::string>(const YAML::Node& n, const std::string& where) {
  if (n.IsNull()) return "";
  if (!n.IsScalar()) input_error(where, ": expected a string, got ", show(n));
  return n.Scalar();
}

template <>
std::vector<int> convert<std::vector<int>>(const YAML::Node& n, const std::string& where) {
  if (!n.IsSequence()) input_error(where, ": expected a list of integers, got ", show(n));
  std::vector<int> out;
  for (size_t i = 0; i < n.size(); ++i) out.push_back(convert<int>(n[i], cat(where, "[", i, "]")));
  return out;
}

template <typename T>
void emit_value(YAML::Emitter& e, const T& v) {
  e << v;
}
void emit_value(YAML::Emitter& e, const std::vector<int>& v) {
  e << YAML::Flow << YAML::BeginSeq;
  for (int x : v) e << x;
  e << YAML::EndSeq;
}
void emit_value(YAML::Emitter& e, const double& v) {
  // Shortest text that reads back as the same double.
  char buf[64];
  for (int prec = 6; prec <= 17; ++prec) {
    snprintf(buf, sizeof(buf), "%.*g", prec, v);
    if (std::stod(buf) == v) break;
  }
  std::string s = buf;
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  e << s;
}
void emit_value(YAML::Emitter& e, const std::string& v) { e << YAML::DoubleQuoted << v; }

// --- the table ---------------------------------------------------------------------

struct Field {
  ConfigKey key;
  std::function<void(Config&, const YAML::Node&, const std::string&)> set;
  std::function<void(const Config&, YAML::Emitter&)> emit;
};

template <typename S, typename T>
Field field(const char* section, const char* name, S Config::*sec, T S::*member, const char* type, const char* doc) {
  Field f;
  const Config defaults;
  YAML::Emitter e;
  emit_value(e, defaults.*sec.*member);
  f.key = ConfigKey{section, name, type, e.c_str(), doc};
  f.set = [sec, member](Config& c, const YAML::Node& n, const std::string& where) {
    c.*sec.*member = convert<T>(n, where);
  };
  f.emit = [sec, member](const Config& c, YAML::Emitter& out) { emit_value(out, c.*sec.*member); };
  return f;
}

const std::vector<Field>& fields() {
  static const std::vector<Field> table = {
      field("data", "path", &Config::data, &DataConfig::path, "string",
            "dataset directory written by ddpm_prepare (holds `manifest`); relative paths are taken from the working directory"),
      field("data", "random_flip", &Config::data, &DataConfig::random_flip, "bool",
            "random horizontal flips, drawn per example from the counter-based RNG"),
      field("data", "prefetch_batches", &Config::data, &DataConfig::prefetch_batches, "int",
            "batches the loader's prefetch thread keeps ready"),

      field("model", "resolution", &Config::model, &ModelConfig::resolution, "int", "image height and width"),
      field("model", "in_channels", &Config::model, &ModelConfig::in_channels, "int", "channels of the input images"),
      field("model", "out_ch", &Config::model, &ModelConfig::out_ch, "int", "channels of the predicted epsilon"),
      field("model", "ch", &Config::model, &ModelConfig::ch, "int",
            "base channel count (a multiple of 32: GroupNorm uses 32 groups); the time embedding is 4*ch"),
      field("model", "ch_mult", &Config::model, &ModelConfig::ch_mult, "list of int",
            "channel multiplier per resolution level; the U-Net has len(ch_mult) levels"),
      field("model", "num_res_blocks", &Config::model, &ModelConfig::num_res_blocks, "int",
            "residual blocks per level on the way down (the way up has one more)"),
      field("model", "attn_resolutions", &Config::model, &ModelConfig::attn_resolutions, "list of int",
            "resolutions at which each residual block is followed by self-attention"),
      field("model", "dropout", &Config::model, &ModelConfig::dropout, "float",
            "dropout rate before each block's second convolution (training only)"),
      field("model", "resamp_with_conv", &Config::model, &ModelConfig::resamp_with_conv, "bool",
            "3x3 convolutions in the down/upsamplers (false: 2x2 average pool and plain nearest upsample)"),

      field("diffusion", "beta_schedule", &Config::diffusion, &DiffusionConfig::beta_schedule, "string",
            "linear | quad | const | jsd | warmup10 | warmup50 | cosine"),
      field("diffusion", "beta_start", &Config::diffusion, &DiffusionConfig::beta_start, "float", "beta_1"),
      field("diffusion", "beta_end", &Config::diffusion, &DiffusionConfig::beta_end, "float", "beta_T"),
      field("diffusion", "num_timesteps", &Config::diffusion, &DiffusionConfig::num_timesteps, "int", "T"),
      field("diffusion", "model_mean_type", &Config::diffusion, &DiffusionConfig::model_mean_type, "string",
            "what the network predicts: eps | xstart | xprev"),
      field("diffusion", "model_var_type", &Config::diffusion, &DiffusionConfig::model_var_type, "string",
            "reverse-process variance: fixedlarge (beta_t) | fixedsmall (posterior variance)"),
      field("diffusion", "loss_type", &Config::diffusion, &DiffusionConfig::loss_type, "string",
            "mse (L_simple) | kl (the variational bound)"),

      field("train", "batch_size", &Config::train, &TrainConfig::batch_size, "int",
            "global batch; each of W ranks takes batch_size / W (must divide)"),
      field("train", "total_steps", &Config::train, &TrainConfig::total_steps, "int", "optimizer steps of the run"),
      field("train", "lr", &Config::train, &TrainConfig::lr, "float", "Adam learning rate after warm-up"),
      field("train", "warmup_steps", &Config::train, &TrainConfig::warmup_steps, "int",
            "linear learning-rate warm-up from 0 over this many steps"),
      field("train", "grad_clip", &Config::train, &TrainConfig::grad_clip, "float",
            "global-norm gradient clipping threshold (0: off)"),
      field("train", "ema_decay", &Config::train, &TrainConfig::ema_decay, "float",
            "EMA decay of the weights kept for sampling (0: EMA equals the weights)"),
      field("train", "adam_beta1", &Config::train, &TrainConfig::adam_beta1, "float", "Adam beta1"),
      field("train", "adam_beta2", &Config::train, &TrainConfig::adam_beta2, "float", "Adam beta2"),
      field("train", "adam_eps", &Config::train, &TrainConfig::adam_eps, "float", "Adam epsilon"),
      field("train", "seed", &Config::train, &TrainConfig::seed, "int",
            "seed of every random stream (init, data order, t, noise, dropout, flips)"),
      field("train", "log_every", &Config::train, &TrainConfig::log_every, "int",
            "steps between metrics.jsonl records and log lines"),
      field("train", "sample_every", &Config::train, &TrainConfig::sample_every, "int",
            "steps between grids of EMA samples (0: never)"),
      field("train", "sample_count", &Config::train, &TrainConfig::sample_count, "int", "images in each sample grid"),
      field("train", "sample_sampler", &Config::train, &TrainConfig::sample_sampler, "string",
            "sampler of the grids: ancestral (the paper's, T steps) | ddim"),
      field("train", "sample_steps", &Config::train, &TrainConfig::sample_steps, "int",
            "DDIM steps of the grids (0: T)"),
      field("train", "fid_every", &Config::train, &TrainConfig::fid_every, "int",
            "steps between FID measurements of the EMA weights (0: never)"),
      field("train", "fid_num", &Config::train, &TrainConfig::fid_num, "int",
            "samples per FID measurement, drawn by all ranks"),
      field("train", "fid_ref", &Config::train, &TrainConfig::fid_ref, "string",
            "FID reference: a statistics .npz (mu, sigma) or images (prepared dataset, folder, .npz with arr_0)"),
      field("train", "fid_steps", &Config::train, &TrainConfig::fid_steps, "int",
            "DDIM steps of the FID samples"),
      field("train", "fid_inception", &Config::train, &TrainConfig::fid_inception, "string",
            "Inception weights file (empty: $DDPM_INCEPTION, then ~/.cache/ddpm/inception-2015-12-05.h5)"),
      field("train", "checkpoint_every", &Config::train, &TrainConfig::checkpoint_every, "int",
            "steps between checkpoints (one is also written at the end)"),
      field("train", "keep_checkpoints", &Config::train, &TrainConfig::keep_checkpoints, "int",
            "how many of the newest checkpoints to keep"),
      field("train", "bucket_mb", &Config::train, &TrainConfig::bucket_mb, "float",
            "size of the gradient all-reduce buckets in MiB"),
      field("train", "step_timeout_s", &Config::train, &TrainConfig::step_timeout_s, "float",
            "watchdog: a step (or collective) slower than this aborts the whole job"),
      field("train", "recompute", &Config::train, &TrainConfig::recompute, "bool",
            "recompute each residual block's inner activations during backward instead of keeping them "
            "(less memory, about one more forward pass through the blocks' first halves)"),
      field("train", "max_nonfinite_skips", &Config::train, &TrainConfig::max_nonfinite_skips, "int",
            "steps in a row with a NaN/Inf loss or gradient that are skipped before the job aborts"),

      field("device", "kind", &Config::device, &DeviceConfig::kind, "string", "cpu | cuda (one GPU per rank)"),
      field("device", "threads", &Config::device, &DeviceConfig::threads, "int",
            "CPU threads per rank (0: the cores of the node divided by the ranks on it)"),
      field("device", "precision", &Config::device, &DeviceConfig::precision, "string",
            "fp32 | tf32 | bf16: how convolutions and matrix products compute (tf32: GPU only; bf16: "
            "fp32 accumulation, everything else fp32)"),
      field("device", "winograd", &Config::device, &DeviceConfig::winograd, "bool",
            "CPU, fp32: 3x3 stride-1 convolutions on 32x32 maps and larger through oneDNN's Winograd kernels "
            "(faster there; rounding ~1e-6 relative instead of ~2e-7)"),
  };
  return table;
}

const char* const kSections[] = {"data", "model", "diffusion", "train", "device"};

void apply(Config& cfg, const std::string& section, const std::string& key, const YAML::Node& value,
           const std::string& source) {
  for (const Field& f : fields()) {
    if (f.key.section == section && f.key.name == key) {
      f.set(cfg, value, cat(source, ": ", section, ".", key));
      return;
    }
  }
  input_error(source, ": unknown key '", section, ".", key, "' (see docs/config.md)");
}

// A mapping key as text; a key that is itself a list or mapping ("? [a, b]") is refused.
std::string key_text(const YAML::Node& key, const std::string& source) {
  if (!key.IsScalar()) input_error(source, ": a key must be a plain name, got ", show(key));
  return key.Scalar();
}

void apply_mapping(Config& cfg, const YAML::Node& root, const std::string& source,
                   const std::vector<std::string>& only_sections) {
  if (root.IsNull()) return;
  if (!root.IsMap()) input_error(source, ": expected a mapping of sections (data, model, diffusion, train, device)");
  for (const auto& sec : root) {
    const std::string section = key_text(sec.first, source);
    const bool known = std::find(std::begin(kSections), std::end(kSections), section) != std::end(kSections);
    const bool allowed = only_sections.empty() ||
                         std::find(only_sections.begin(), only_sections.end(), section) != only_sections.end();
    if (!known || !allowed) input_error(source, ": unknown section '", section, "'");
    if (sec.second.IsNull()) continue;
    if (!sec.second.IsMap()) input_error(source, ": section '", section, "' must be a mapping");
    for (const auto& kv : sec.second) apply(cfg, section, key_text(kv.first, source), kv.second, source);
  }
}

YAML::Node parse_yaml(const std::string& text, const std::string& source) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    input_error(source, ": not valid YAML (line ", e.mark.line + 1, ": ", e.msg, ")");
  }
}

void require(bool ok, const std::string& source, const std::string& key, const std::string& what) {
  if (!ok) input_error(source, ": ", key, ": ", what);
}

bool one_of(const std::string& v, std::initializer_list<const char*> allowed) {
  for (const char* a : allowed) {
    if (v == a) return true;
  }
  return false;
}

}  // namespace

const std::vector<ConfigKey>& config_keys() {
  static const std::vector<ConfigKey> keys = [] {
    std::vector<ConfigKey> k;
    for (const Field& f : fields()) k.push_back(f.key);
    return k;
  }();
  return keys;
}

void ModelConfig::validate(const std::string& source) const {
  require(resolution >= 1 && resolution <= 4096, source, "model.resolution", cat("must be in [1, 4096], got ", resolution));
  require(in_channels >= 1 && in_channels <= 64, source, "model.in_channels", cat("must be in [1, 64], got ", in_channels));
  require(out_ch >= 1 && out_ch <= 64, source, "model.out_ch", cat("must be in [1, 64], got ", out_ch));
  require(ch >= 32 && ch <= 4096 && ch % 32 == 0, source, "model.ch",
          cat("must be a multiple of 32 in [32, 4096] (GroupNorm has 32 groups), got ", ch));
  require(!ch_mult.empty() && ch_mult.size() <= 10, source, "model.ch_mult", "must list 1 to 10 levels");
  for (int m : ch_mult) require(m >= 1 && m <= 64, source, "model.ch_mult", cat("multipliers must be in [1, 64], got ", m));
  require(num_res_blocks >= 0 && num_res_blocks <= 64, source, "model.num_res_blocks",
          cat("must be in [0, 64], got ", num_res_blocks));
  if (num_res_blocks == 0) {
    // No block changes the channel count on the way down, so the up path's skip
    // channels only line up when every level but the last keeps the base width.
    for (size_t i = 0; i + 1 < ch_mult.size(); ++i) {
      require(ch_mult[i] == 1, source, "model.ch_mult",
              "with num_res_blocks 0 every level but the last must have multiplier 1");
    }
  }
  const int downsamples = static_cast<int>(ch_mult.size()) - 1;
  require(resolution % (1 << downsamples) == 0, source, "model.resolution",
          cat(resolution, " is not divisible by 2^", downsamples, " (one halving per level after the first)"));
  std::string levels;
  for (int i = 0; i <= downsamples; ++i) levels += cat(i ? ", " : "", resolution >> i);
  for (int r : attn_resolutions) {
    bool found = false;
    for (int i = 0; i <= downsamples; ++i) found |= (resolution >> i) == r;
    require(found, source, "model.attn_resolutions", cat(r, " is not a resolution of this U-Net (", levels, ")"));
  }
  require(dropout >= 0 && dropout < 1, source, "model.dropout", cat("must be in [0, 1), got ", dropout));
}

std::string ModelConfig::to_yaml() const {
  Config c;
  c.model = *this;
  YAML::Emitter e;
  e << YAML::BeginMap;
  for (const Field& f : fields()) {
    if (f.key.section != "model") continue;
    e << YAML::Key << f.key.name << YAML::Value;
    f.emit(c, e);
  }
  e << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

ModelConfig ModelConfig::from_yaml_text(const std::string& text, const std::string& source) {
  YAML::Node root = parse_yaml(text, source);
  Config c;
  // Accept both a bare mapping of model keys and a full config with a model section.
  if (root.IsMap() && root["model"]) {
    apply_mapping(c, root, source, {});
  } else {
    YAML::Node wrapped;
    wrapped["model"] = root;
    apply_mapping(c, wrapped, source, {"model"});
  }
  c.model.validate(source);
  return c.model;
}

bool ModelConfig::operator==(const ModelConfig& o) const {
  return resolution == o.resolution && in_channels == o.in_channels && out_ch == o.out_ch && ch == o.ch &&
         ch_mult == o.ch_mult && num_res_blocks == o.num_res_blocks && attn_resolutions == o.attn_resolutions &&
         dropout == o.dropout && resamp_with_conv == o.resamp_with_conv;
}

void DiffusionConfig::validate(const std::string& source) const {
  require(one_of(beta_schedule, {"linear", "quad", "const", "jsd", "warmup10", "warmup50", "cosine"}), source,
          "diffusion.beta_schedule", cat("unknown schedule '", beta_schedule, "'"));
  require(beta_start > 0 && beta_start < 1, source, "diffusion.beta_start", "must be in (0, 1)");
  require(beta_end > 0 && beta_end < 1, source, "diffusion.beta_end", "must be in (0, 1)");
  require(num_timesteps >= 2 && num_timesteps <= 100000, source, "diffusion.num_timesteps", "must be in [2, 100000]");
  require(one_of(model_mean_type, {"eps", "xstart", "xprev"}), source, "diffusion.model_mean_type",
          cat("must be eps, xstart or xprev, got '", model_mean_type, "'"));
  require(one_of(model_var_type, {"fixedlarge", "fixedsmall"}), source, "diffusion.model_var_type",
          cat("must be fixedlarge or fixedsmall, got '", model_var_type, "'"));
  require(one_of(loss_type, {"mse", "kl"}), source, "diffusion.loss_type", cat("must be mse or kl, got '", loss_type, "'"));
}

bool DiffusionConfig::operator==(const DiffusionConfig& o) const {
  return beta_schedule == o.beta_schedule && beta_start == o.beta_start && beta_end == o.beta_end &&
         num_timesteps == o.num_timesteps && model_mean_type == o.model_mean_type &&
         model_var_type == o.model_var_type && loss_type == o.loss_type;
}

void TrainConfig::validate(const std::string& source) const {
  require(batch_size >= 1 && batch_size <= (1 << 20), source, "train.batch_size", "must be in [1, 1048576]");
  require(total_steps >= 0, source, "train.total_steps", "must be >= 0");
  require(lr > 0 && lr < 1, source, "train.lr", "must be in (0, 1)");
  require(warmup_steps >= 0, source, "train.warmup_steps", "must be >= 0");
  require(grad_clip >= 0, source, "train.grad_clip", "must be >= 0");
  require(ema_decay >= 0 && ema_decay < 1, source, "train.ema_decay", "must be in [0, 1)");
  require(adam_beta1 >= 0 && adam_beta1 < 1, source, "train.adam_beta1", "must be in [0, 1)");
  require(adam_beta2 >= 0 && adam_beta2 < 1, source, "train.adam_beta2", "must be in [0, 1)");
  require(adam_eps > 0, source, "train.adam_eps", "must be > 0");
  require(log_every >= 1, source, "train.log_every", "must be >= 1");
  require(sample_every >= 0, source, "train.sample_every", "must be >= 0");
  require(sample_count >= 1 && sample_count <= 4096, source, "train.sample_count", "must be in [1, 4096]");
  require(one_of(sample_sampler, {"ancestral", "ddim"}), source, "train.sample_sampler",
          cat("must be ancestral or ddim, got '", sample_sampler, "'"));
  require(sample_steps >= 0, source, "train.sample_steps", "must be >= 0");
  require(fid_every >= 0, source, "train.fid_every", "must be >= 0");
  require(fid_num >= 2 && fid_num <= 1000000, source, "train.fid_num", "must be in [2, 1000000]");
  require(fid_steps >= 1, source, "train.fid_steps", "must be >= 1");
  require(fid_every == 0 || !fid_ref.empty(), source, "train.fid_ref",
          "is needed with train.fid_every: a statistics .npz (ddpm_eval fid --save-stats) or a set of images");
  require(checkpoint_every >= 1, source, "train.checkpoint_every", "must be >= 1");
  require(keep_checkpoints >= 1, source, "train.keep_checkpoints", "must be >= 1");
  require(bucket_mb > 0 && bucket_mb <= 4096, source, "train.bucket_mb", "must be in (0, 4096]");
  require(step_timeout_s > 0, source, "train.step_timeout_s", "must be > 0");
  require(max_nonfinite_skips >= 1, source, "train.max_nonfinite_skips", "must be >= 1");
}

void DeviceConfig::validate(const std::string& source) const {
  require(one_of(kind, {"cpu", "cuda"}), source, "device.kind", cat("must be cpu or cuda, got '", kind, "'"));
  require(threads >= 0 && threads <= 1024, source, "device.threads", "must be in [0, 1024]");
  require(one_of(precision, {"fp32", "tf32", "bf16"}), source, "device.precision",
          cat("must be fp32, tf32 or bf16, got '", precision, "'"));
  require(!(kind == "cpu" && precision == "tf32"), source, "device.precision",
          "tf32 is a GPU mode; on the CPU use fp32 or bf16");
}

void Config::validate(const std::string& source) const {
  model.validate(source);
  diffusion.validate(source);
  train.validate(source);
  device.validate(source);
}

std::string Config::to_yaml() const {
  YAML::Emitter e;
  e << YAML::BeginMap;
  for (const char* section : kSections) {
    e << YAML::Key << section << YAML::Value << YAML::BeginMap;
    for (const Field& f : fields()) {
      if (f.key.section != section) continue;
      e << YAML::Key << f.key.name << YAML::Value;
      f.emit(*this, e);
    }
    e << YAML::EndMap;
  }
  e << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

Config parse_config(const std::string& text, const std::string& source, const std::vector<std::string>& overrides) {
  Config cfg;
  apply_mapping(cfg, parse_yaml(text, source), source, {});
  for (const std::string& o : overrides) {
    const size_t eq = o.find('=');
    const size_t dot = o.find('.');
    if (eq == std::string::npos || dot == std::string::npos || dot > eq) {
      input_error("--set ", o, ": expected section.key=value");
    }
    const std::string section = o.substr(0, dot);
    const std::string key = o.substr(dot + 1, eq - dot - 1);
    if (std::find(std::begin(kSections), std::end(kSections), section) == std::end(kSections)) {
      input_error("--set ", o, ": unknown section '", section, "'");
    }
    apply(cfg, section, key, parse_yaml(o.substr(eq + 1), "--set " + o), "--set");
  }
  cfg.validate(source);
  return cfg;
}

std::string config_difference(const Config& a, const Config& b, const std::string& section) {
  for (const Field& f : fields()) {
    if (f.key.section != section) continue;
    YAML::Emitter ea, eb;
    f.emit(a, ea);
    f.emit(b, eb);
    if (std::string(ea.c_str()) != eb.c_str()) return cat(section, ".", f.key.name, ": ", ea.c_str(), " vs ", eb.c_str());
  }
  return "";
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  if (!fs::exists(path)) input_error(path, ": no such file");
  return parse_config(fs::read_text(path), path, overrides);
}

}  // namespace ddpm
