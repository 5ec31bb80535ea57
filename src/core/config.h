// The YAML configuration: five sections (data, model, diffusion, train, device), every
// key with a type, a default and a line of documentation in one table (config.cpp).
// docs/config.md lists the same keys; a unit test keeps the two in step.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace YAML {
class Node;
}

namespace ddpm {

struct DataConfig {
  std::string path;           // dataset directory with a manifest (ddpm_prepare --out)
  bool random_flip = true;    // random horizontal flips (the paper's only augmentation)
  int prefetch_batches = 4;   // depth of the loader's prefetch queue
};

// The U-Net (`model:` section); defaults are the paper's CIFAR10 model.
struct ModelConfig {
  int resolution = 32;
  int in_channels = 3;
  int out_ch = 3;
  int ch = 128;
  std::vector<int> ch_mult{1, 2, 2, 2};
  int num_res_blocks = 2;
  std::vector<int> attn_resolutions{16};
  double dropout = 0.1;
  bool resamp_with_conv = true;

  // Values of one image the model reads: resolution² · in_channels.
  int64_t values_per_image() const { return int64_t{resolution} * resolution * in_channels; }

  // Throws InputError naming the offending key.
  void validate(const std::string& source) const;
  std::string to_yaml() const;  // a `model:`-less mapping of the keys above
  // Reads a mapping with the keys above (unknown keys are errors naming source).
  static ModelConfig from_yaml_text(const std::string& text, const std::string& source);
  bool operator==(const ModelConfig& o) const;
  bool operator!=(const ModelConfig& o) const { return !(*this == o); }
};

struct DiffusionConfig {
  std::string beta_schedule = "linear";  // linear|quad|const|jsd|warmup10|warmup50|cosine
  double beta_start = 1e-4;
  double beta_end = 0.02;
  int num_timesteps = 1000;
  std::string model_mean_type = "eps";     // eps|xstart|xprev
  std::string model_var_type = "fixedlarge";  // fixedlarge|fixedsmall
  std::string loss_type = "mse";           // mse|kl
  void validate(const std::string& source) const;
  bool operator==(const DiffusionConfig& o) const;
};

struct TrainConfig {
  int batch_size = 128;          // global batch, split over the ranks
  int64_t total_steps = 800000;
  double lr = 2e-4;
  int warmup_steps = 5000;
  double grad_clip = 1.0;
  double ema_decay = 0.9999;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_eps = 1e-8;
  uint64_t seed = 0;
  int log_every = 100;
  int sample_every = 10000;
  int sample_count = 64;
  std::string sample_sampler = "ancestral";  // ancestral|ddim for the training grids
  int sample_steps = 0;                      // DDIM steps for the grids (0: T)
  int fid_every = 0;             // steps between FID measurements of the EMA (0: never)
  int fid_num = 5000;            // samples per measurement, drawn by all ranks
  std::string fid_ref;           // reference: a stats .npz (mu, sigma) or an image set
  int fid_steps = 50;            // DDIM steps of the FID samples
  std::string fid_inception;     // Inception weights ("": $DDPM_INCEPTION, then the per-user path)
  int checkpoint_every = 10000;
  int keep_checkpoints = 3;
  double bucket_mb = 25.0;       // gradient all-reduce bucket size
  double step_timeout_s = 600;   // watchdog: a step longer than this aborts the job
  int max_nonfinite_skips = 10;  // NaN/Inf steps in a row before the job aborts
  bool recompute = false;        // residual blocks' inner activations recomputed in backward
  void validate(const std::string& source) const;
};

struct DeviceConfig {
  std::string kind = "cpu";        // cpu|cuda
  int threads = 0;                 // CPU threads per rank (0: all cores / ranks on the node)
  std::string precision = "fp32";  // fp32|tf32|bf16 (tf32: GPU only)
  bool winograd = true;            // CPU: Winograd 3x3 convolutions where faster (fp32)
  void validate(const std::string& source) const;
};

struct Config {
  DataConfig data;
  ModelConfig model;
  DiffusionConfig diffusion;
  TrainConfig train;
  DeviceConfig device;

  void validate(const std::string& source) const;
  std::string to_yaml() const;  // the full resolved config
};

// One documented key of the table.
struct ConfigKey {
  std::string section, name, type, default_value, doc;
};
const std::vector<ConfigKey>& config_keys();

// Parses YAML text (source names the file in errors), then applies `section.key=value`
// overrides. Unknown sections or keys, bad types and bad values are InputErrors.
Config parse_config(const std::string& text, const std::string& source,
                    const std::vector<std::string>& overrides = {});
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// The first key of `section` whose values differ, as "section.key: A vs B", or "".
std::string config_difference(const Config& a, const Config& b, const std::string& section);

}  // namespace ddpm
