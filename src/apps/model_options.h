// The options of every command that reads a trained model (ddpm_sample, ddpm_eval eps
// and bpd): where the weights come from, which of them, and overrides of the config
// parts that sampling and evaluation read.
#pragma once

#include "apps/cli.h"
#include "io/model_source.h"

namespace ddpm {

enum class ConfigOverrides { kNone, kDiffusionAndDevice };

// --checkpoint, --run-dir, --weights and, with kDiffusionAndDevice, --set.
void add_model_options(Cli& cli, ConfigOverrides overrides);
// The model the options name, with --set applied; InputError for a key outside the
// diffusion and device sections (`purpose` names the command's work in the message).
ModelSource load_model(const Cli& cli, ConfigOverrides overrides, const char* purpose);

}  // namespace ddpm
