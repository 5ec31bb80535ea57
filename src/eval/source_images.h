// What the evaluation commands share about their source images: a prepared dataset the
// model can read.
#pragma once

#include <string>

namespace ddpm {
struct ModelSource;
namespace data {
class DatasetReader;
}  // namespace data
}  // namespace ddpm

namespace ddpm::eval {

// InputError naming the dataset and the model unless its images have the model's
// resolution and channels.
void require_model_shape(const data::DatasetReader& dataset, const std::string& data_dir, const ModelSource& source);

}  // namespace ddpm::eval
