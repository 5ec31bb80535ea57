#include "io/model_source.h"

#include "core/common.h"
#include "core/fs.h"
#include "core/h5.h"
#include "core/unet.h"
#include "io/weights_io.h"
#include "io/checkpoint.h"

namespace ddpm {
namespace {

ModelSource read_source(const std::string& path, const std::string& weights) {
  const h5::File f = h5::File::open_read_checksummed(
      path, "an older ddpm wrote it? rewrite it with tools/rewrite_hdf5.py (PyTorch weights: convert them again "
            "with tools/convert_torch_checkpoint.py)");
  ModelSource src;
  src.path = path;
  src.config.model = read_model_config(f);
  if (f.has_attr("/", "config")) {
    src.config = parse_config(f.read_attr_str("/", "config"), path + " (config)");
    if (src.config.model != read_model_config(f)) f.fail("its config and model_config attributes disagree");
    src.has_run_config = true;
  }
  if (f.has_attr("/", "step")) src.step = f.read_attr_i64("/", "step");
  if (weights != "auto" && weights != "ema" && weights != "params") {
    input_error("--weights must be auto, ema or params, got '", weights, "'");
  }
  src.group = weights == "auto" ? (f.has_group("ema") ? "ema" : "params") : weights;
  if (!f.has_group(src.group)) f.fail(cat("has no '", src.group, "' weights"));
  const UNet net(src.config.model);
  src.weights = alloc_host_floats(net.layout().size());
  read_param_group(f, src.group, net.layout(), src.weights.get());
  return src;
}

}  // namespace

ModelSource load_model_source(const std::string& checkpoint, const std::string& run_dir, const std::string& weights) {
  if (checkpoint.empty() == run_dir.empty()) input_error("give exactly one of --checkpoint and --run-dir");
  if (!checkpoint.empty()) return read_source(checkpoint, weights);
  if (!fs::is_dir(run_dir)) input_error(run_dir, ": no such run directory");
  std::string last_error;
  for (const std::string& path : list_checkpoints(fs::join(run_dir, "checkpoints"))) {
    try {
      return read_source(path, weights);
    } catch (const InputError& e) {
      last_error = e.what();
    }
  }
  input_error(run_dir, ": no valid checkpoint", last_error.empty() ? "" : " (newest problem: " + last_error + ")");
}

}  // namespace ddpm
