// Weights files (HDF5): group `params` (and optionally `ema`) with one float32 dataset
// per parameter, named and shaped as in PyTorch, and the model config as the root
// attribute `model_config` (YAML). Training checkpoints share this part of the format.
#pragma once

#include <string>

#include "core/config.h"
#include "core/h5.h"
#include "core/params.h"

namespace ddpm {

constexpr const char* kWeightsFormat = "ddpm-weights";
constexpr const char* kCheckpointFormat = "ddpm-checkpoint";
constexpr int64_t kWeightsFormatVersion = 1;

// The model config recorded in a weights file or checkpoint (InputError naming the
// file when it is absent or invalid).
ModelConfig read_model_config(const h5::File& f);

// Reads group `group` into params (layout.size() floats). Every tensor of the layout
// must be present with its shape and dtype float32, and no other tensor may be there;
// the first problem is reported by name. A tensor's `crc32` attribute, when present,
// must match its bytes (a flipped bit in a checkpoint is an error, not a silent change).
void read_param_group(const h5::File& f, const std::string& group, const ParamLayout& layout, float* params);
// Writes one dataset per tensor, each with its `crc32` attribute.
void write_param_group(h5::File& f, const std::string& group, const ParamLayout& layout, const float* params);

// CRC-32 (zlib) of a tensor's float bytes.
int64_t tensor_crc32(const float* data, int64_t n);

// Writes a weights file through the commit protocol (path.tmp, fsync, rename).
void save_weights(const std::string& path, const ModelConfig& model, const ParamLayout& layout, const float* params,
                  const float* ema = nullptr);

}  // namespace ddpm
