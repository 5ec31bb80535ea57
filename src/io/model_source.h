// Where sampling and evaluation get a model: a weights file (tools/convert_torch_
// checkpoint.py, save_weights) or a training checkpoint, given directly or as the newest
// valid checkpoint of a run directory.
#pragma once

#include <string>

#include "core/config.h"
#include "core/params.h"

namespace ddpm {

struct ModelSource {
  std::string path;   // the file read
  std::string group;  // "ema" or "params"
  Config config;      // model from the file; the rest from the run's config when the
                      // file is a training checkpoint, else the defaults (the paper's)
  bool has_run_config = false;
  HostFloats weights;  // in the layout of UNet(config.model)
  int64_t step = -1;   // training step of a checkpoint
};

// Exactly one of checkpoint and run_dir is non-empty. weights: auto (ema when the file
// has it), ema or params. InputError naming the file on any problem.
ModelSource load_model_source(const std::string& checkpoint, const std::string& run_dir, const std::string& weights);

}  // namespace ddpm
