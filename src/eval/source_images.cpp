#include "eval/source_images.h"

#include "core/common.h"
#include "data/shard_reader.h"
#include "io/model_source.h"

namespace ddpm::eval {

void require_model_shape(const data::DatasetReader& dataset, const std::string& data_dir, const ModelSource& source) {
  const ModelConfig& mc = source.config.model;
  const data::ImageShape shape = dataset.shape();
  if (shape.height != mc.resolution || shape.width != mc.resolution || shape.channels != mc.in_channels) {
    input_error(data_dir, ": images are ", shape.height, "x", shape.width, "x", shape.channels, " but the model (",
                source.path, ") takes ", mc.resolution, "x", mc.resolution, "x", mc.in_channels);
  }
}

}  // namespace ddpm::eval
