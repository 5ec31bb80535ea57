// The parameter store: every parameter of a model lives in one contiguous float32
// buffer, at an offset recorded by name with its PyTorch shape (conv OIHW, linear
// [out, in]). Gradients, Adam moments and the EMA use the same layout, so all-reduce,
// clipping, Adam, EMA and checkpoints work on flat spans. Parameters are identified by
// name, never by position.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace ddpm {

// How a tensor is initialised (DESIGN: variance-scaling fan_avg uniform, zero init with
// scale 1e-10 for the layers that end a residual branch, biases 0, GroupNorm 1 / 0).
enum class InitKind { kWeight, kZeroWeight, kBias, kNormWeight, kNormBias };

struct ParamInfo {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0;  // in floats, into the flat buffer; a multiple of kParamAlign
  int64_t numel = 0;
  InitKind init = InitKind::kWeight;
};

// One named tensor of a flat buffer: its floats and its PyTorch shape.
struct TensorView {
  float* data = nullptr;
  const std::vector<int64_t>* shape = nullptr;
  int64_t numel = 0;
  float& operator[](int64_t i) const { return data[i]; }
};

class ParamLayout {
 public:
  // Offsets are aligned to 16 floats (64 bytes) so every tensor starts on a cache
  // line; the gaps are zero in every buffer and stay zero under Adam and EMA.
  static constexpr int64_t kParamAlign = 16;

  // Registers a tensor; returns its offset.
  int64_t add(const std::string& name, std::vector<int64_t> shape, InitKind init);
  const std::vector<ParamInfo>& params() const { return params_; }
  const ParamInfo* find(const std::string& name) const;
  const ParamInfo& at(const std::string& name) const;  // throws if absent
  // The tensor `p` (or the one named `name`) of a buffer with this layout (params,
  // grads, Adam moments or EMA alike).
  static TensorView view(float* buffer, const ParamInfo& p) { return {buffer + p.offset, &p.shape, p.numel}; }
  TensorView view(float* buffer, const std::string& name) const { return view(buffer, at(name)); }
  int64_t size() const { return size_; }               // floats in the flat buffer
  int64_t num_parameters() const;                      // sum of numel (the paper's count)

 private:
  std::vector<ParamInfo> params_;
  std::unordered_map<std::string, size_t> index_;
  int64_t size_ = 0;
};

// A 64-byte aligned host float array.
struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};
using HostFloats = std::unique_ptr<float[], FreeDeleter>;
HostFloats alloc_host_floats(int64_t n);  // zero-filled

// Fills `params` (host, layout.size() floats) with the paper's initialisation, drawn
// from the counter-based RNG keyed by (seed, parameter name).
void init_params(const ParamLayout& layout, float* params, uint64_t seed);

// The uniform limit of variance-scaling fan_avg for a weight shape and scale.
double fan_avg_uniform_limit(const std::vector<int64_t>& shape, double scale);

std::string shape_to_string(const std::vector<int64_t>& shape);

}  // namespace ddpm
