#include "core/params.h"

#include <cmath>
#include <cstring>

#include "core/common.h"
#include "core/rng.h"

namespace ddpm {

int64_t ParamLayout::add(const std::string& name, std::vector<int64_t> shape, InitKind init) {
  DDPM_CHECK(index_.count(name) == 0, "duplicate parameter ", name);
  ParamInfo p;
  p.name = name;
  p.numel = 1;
  for (int64_t d : shape) p.numel *= d;
  p.shape = std::move(shape);
  p.offset = size_;
  p.init = init;
  size_ += (p.numel + kParamAlign - 1) / kParamAlign * kParamAlign;
  index_[name] = params_.size();
  params_.push_back(std::move(p));
  return params_.back().offset;
}

const ParamInfo* ParamLayout::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &params_[it->second];
}

const ParamInfo& ParamLayout::at(const std::string& name) const {
  const ParamInfo* p = find(name);
  DDPM_CHECK(p != nullptr, "no parameter named ", name);
  return *p;
}

int64_t ParamLayout::num_parameters() const {
  int64_t n = 0;
  for (const ParamInfo& p : params_) n += p.numel;
  return n;
}

HostFloats alloc_host_floats(int64_t n) {
  void* p = nullptr;
  const size_t bytes = static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(float);
  if (posix_memalign(&p, 64, (bytes + 63) / 64 * 64) != 0) throw std::bad_alloc();
  std::memset(p, 0, bytes);
  return HostFloats(static_cast<float*>(p));
}

double fan_avg_uniform_limit(const std::vector<int64_t>& shape, double scale) {
  // Linear [out, in]; conv [out, in, kh, kw]: fans count the receptive field.
  const double receptive = shape.size() == 4 ? static_cast<double>(shape[2] * shape[3]) : 1.0;
  const double fan_in = static_cast<double>(shape[1]) * receptive;
  const double fan_out = static_cast<double>(shape[0]) * receptive;
  return std::sqrt(3.0 * scale / ((fan_in + fan_out) / 2.0));
}

void init_params(const ParamLayout& layout, float* params, uint64_t seed) {
  const u32x2 key = philox_key(seed);
  for (const ParamInfo& p : layout.params()) {
    const TensorView w = ParamLayout::view(params, p);
    switch (p.init) {
      case InitKind::kBias:
      case InitKind::kNormBias:
        std::fill(w.data, w.data + w.numel, 0.0f);
        break;
      case InitKind::kNormWeight:
        std::fill(w.data, w.data + w.numel, 1.0f);
        break;
      case InitKind::kWeight:
      case InitKind::kZeroWeight: {
        const double scale = p.init == InitKind::kZeroWeight ? 1e-10 : 1.0;
        const float limit = static_cast<float>(fan_avg_uniform_limit(p.shape, scale));
        const uint32_t stream = fnv1a32(p.name.c_str());
        for (int64_t i = 0; i < p.numel; i += 4) {
          const u32x4 r = philox4x32_10(philox_counter(Purpose::kInit, 0, 0, stream, static_cast<uint32_t>(i / 4)), key);
          for (int j = 0; j < 4 && i + j < p.numel; ++j) w[i + j] = (2.0f * uniform01(r[j]) - 1.0f) * limit;
        }
        break;
      }
    }
  }
}

std::string shape_to_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace ddpm
