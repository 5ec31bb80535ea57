#include "io/weights_io.h"

#include <zlib.h>

#include <set>

#include "core/fs.h"

namespace ddpm {

ModelConfig read_model_config(const h5::File& f) {
  if (!f.has_attr("/", "model_config")) f.fail("no 'model_config' attribute: not a ddpm weights file or checkpoint");
  return ModelConfig::from_yaml_text(f.read_attr_str("/", "model_config"), f.path() + " (model_config)");
}

void read_param_group(const h5::File& f, const std::string& group, const ParamLayout& layout, float* params) {
  if (!f.has_group(group)) f.fail(cat("no group '", group, "'"));
  const std::vector<std::string> names = f.list(group);
  const std::set<std::string> present(names.begin(), names.end());
  for (const ParamInfo& p : layout.params()) {
    const std::string path = group + "/" + p.name;
    if (!present.count(p.name)) f.fail(cat("tensor '", path, "' is missing"));
    const h5::DatasetInfo info = f.info(path);
    if (info.shape != p.shape) {
      f.fail(cat("tensor '", path, "' has shape ", shape_to_string(info.shape), ", expected ", shape_to_string(p.shape)));
    }
    if (info.dtype != h5::DType::kFloat32) {
      f.fail(cat("tensor '", path, "' has dtype ", h5::dtype_name(info.dtype), ", expected float32"));
    }
  }
  for (const std::string& n : names) {
    if (!layout.find(n)) f.fail(cat("unexpected tensor '", group, "/", n, "' (not a parameter of this model)"));
  }
  for (const ParamInfo& p : layout.params()) {
    const std::string path = group + "/" + p.name;
    const TensorView t = ParamLayout::view(params, p);
    f.read_f32(path, t.data, t.numel);
    if (f.has_attr(path, "crc32") && f.read_attr_i64(path, "crc32") != tensor_crc32(t.data, t.numel)) {
      f.fail(cat("tensor '", path, "' does not match its checksum (the file is corrupt)"));
    }
  }
}

int64_t tensor_crc32(const float* data, int64_t n) {
  const auto* bytes = reinterpret_cast<const Bytef*>(data);
  uLong crc = crc32(0L, Z_NULL, 0);
  for (int64_t done = 0, total = n * static_cast<int64_t>(sizeof(float)); done < total;) {
    const int64_t len = std::min<int64_t>(total - done, int64_t{1} << 30);
    crc = crc32(crc, bytes + done, static_cast<uInt>(len));
    done += len;
  }
  return static_cast<int64_t>(crc);
}

void write_param_group(h5::File& f, const std::string& group, const ParamLayout& layout, const float* params) {
  f.create_group(group);
  for (const ParamInfo& p : layout.params()) {
    const std::string path = group + "/" + p.name;
    const TensorView t = ParamLayout::view(const_cast<float*>(params), p);
    f.write_f32(path, t.data, *t.shape);
    f.write_attr_i64(path, "crc32", tensor_crc32(t.data, t.numel));
  }
}

void save_weights(const std::string& path, const ModelConfig& model, const ParamLayout& layout, const float* params,
                  const float* ema) {
  fs::write_atomically(path, [&](const std::string& tmp) {
    h5::File f = h5::File::create_checksummed(tmp);
    f.write_attr_str_fixed("/", "format", kWeightsFormat);
    f.write_attr_i64("/", "format_version", kWeightsFormatVersion);
    f.write_attr_str_fixed("/", "model_config", model.to_yaml());
    write_param_group(f, "params", layout, params);
    if (ema) write_param_group(f, "ema", layout, ema);
    f.close();
  });
}

}  // namespace ddpm
