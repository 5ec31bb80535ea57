#include "apps/model_options.h"

#include "core/common.h"

namespace ddpm {

void add_model_options(Cli& cli, ConfigOverrides overrides) {
  cli.option("checkpoint", "FILE", "weights file or training checkpoint");
  cli.option("run-dir", "DIR", "use the newest valid checkpoint of a training run");
  cli.option("weights", "auto|ema|params", "which weights; auto takes ema when the file has it", "auto");
  if (overrides == ConfigOverrides::kDiffusionAndDevice) {
    cli.repeated("set", "SECTION.KEY=VALUE", "override the diffusion or device config (e.g. device.kind=cuda)");
  }
}

ModelSource load_model(const Cli& cli, ConfigOverrides overrides, const char* purpose) {
  ModelSource src = load_model_source(cli.get("checkpoint"), cli.get("run-dir"), cli.get("weights"));
  if (overrides == ConfigOverrides::kNone) return src;
  const std::vector<std::string> sets = cli.all("set");
  for (const std::string& o : sets) {
    if (o.rfind("diffusion.", 0) != 0 && o.rfind("device.", 0) != 0) {
      input_error("--set ", o, ": only diffusion.* and device.* keys apply to ", purpose);
    }
  }
  if (!sets.empty()) src.config = parse_config(src.config.to_yaml(), src.path, sets);
  return src;
}

}  // namespace ddpm
