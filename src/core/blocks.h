// The U-Net's building blocks: parameters registered by name (pytorch_diffusion
// naming), activations planned in the arena, and a forward/backward pair each.
// Shapes are NHWC; `N` is the per-rank batch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/arena.h"
#include "core/ops.h"
#include "core/params.h"

namespace ddpm {

constexpr int kGroups = 32;  // GroupNorm groups everywhere in the model

// Everything a pass over the model needs besides the tensors themselves.
struct Pass {
  Ops* ops = nullptr;
  const float* params = nullptr;
  float* grads = nullptr;       // backward only
  uint64_t version = 0;         // changes whenever params change (weight-layout caches)
  int N = 0;
  bool training = false;        // dropout on
  DropoutKey dropout;           // seed, step, example_base; layer is set per block
  const float* p(int64_t off) const { return params + off; }
  float* g(int64_t off) const { return grads + off; }
};

// Parameter handles: offsets into the flat buffers.
struct NormParams {
  int64_t w = -1, b = -1;
  int ch = 0;
  void add(ParamLayout& layout, const std::string& name, int channels);
};

struct LinearParams {
  int64_t w = -1, b = -1;
  int in = 0, out = 0;
  // 1x1 convolutions (q, k, v, proj_out, nin_shortcut) keep PyTorch's [O, C, 1, 1].
  void add(ParamLayout& layout, const std::string& name, int in_ch, int out_ch, bool as_conv1x1, InitKind init);
};

struct ConvLayer {
  int64_t w = -1, b = -1;
  ConvSpec geometry;  // kernel, stride and padding; build() fills in the sizes
  std::unique_ptr<Conv2d> op;
  void add(ParamLayout& layout, const std::string& name, int in_ch, int out_ch, InitKind init);
  void build(Ops& ops, int N, int H, int W);  // H, W of the input
  int64_t macs(int H, int W) const;           // per image
};

// h = conv1(swish(norm1(x))) + temb_proj(swish(temb)); h = conv2(dropout(swish(norm2(h))));
// out = nin_shortcut(x) or x, + h
class ResBlock {
 public:
  ResBlock(ParamLayout& layout, const std::string& prefix, int in_ch, int out_ch, int temb_ch, int H, int W,
           float dropout, uint32_t layer_id);
  void build(Ops& ops, int N);
  void plan(Arena& arena, int N);
  // out [N, H, W, out_ch] from x [N, H, W, in_ch], temb_act [N, temb_ch] = swish(temb)
  void forward(const Pass& ps, float* out, const float* x, const float* temb_act);
  // dx (+= when accumulate) and dtemb_act (+=) from dout; parameter gradients +=
  void backward(const Pass& ps, float* dx, bool accumulate, float* dtemb_act, const float* dout);
  int64_t macs() const;
  int64_t first_param() const { return norm1_.w; }  // lowest offset of its parameters
  int in_ch() const { return in_ch_; }
  int out_ch() const { return out_ch_; }

 private:
  int in_ch_, out_ch_, temb_ch_, H_, W_;
  float dropout_;
  uint32_t layer_id_;
  NormParams norm1_, norm2_;
  ConvLayer conv1_, conv2_;
  LinearParams temb_proj_, nin_;
  bool has_nin_;
  // Saved by forward.
  const float* x_ = nullptr;
  const float* temb_act_ = nullptr;
  float *mean1_ = nullptr, *rstd1_ = nullptr, *h1_ = nullptr, *h2_ = nullptr;
  float *mean2_ = nullptr, *rstd2_ = nullptr, *h3_ = nullptr, *tp_ = nullptr;
  // Backward temporaries (arena shared slots).
  float *dh1_ = nullptr, *dh2_ = nullptr, *dh3_ = nullptr, *dtp_ = nullptr;
};

// out = x + proj_out(attention(q(h), k(h), v(h))), h = norm(x)
class AttnBlock {
 public:
  AttnBlock(ParamLayout& layout, const std::string& prefix, int ch, int H, int W);
  void plan(Arena& arena, int N);
  void forward(const Pass& ps, float* out, const float* x);
  void backward(const Pass& ps, float* dx, bool accumulate, const float* dout);
  int64_t macs() const;
  int64_t first_param() const { return norm_.w; }

 private:
  int ch_, L_;
  NormParams norm_;
  LinearParams q_, k_, v_, proj_out_;
  const float* x_ = nullptr;
  float *mean_ = nullptr, *rstd_ = nullptr, *hn_ = nullptr, *q_act_ = nullptr, *k_act_ = nullptr, *v_act_ = nullptr;
  float *p_ = nullptr, *a_ = nullptr;
  float *da_ = nullptr, *dq_ = nullptr, *dk_ = nullptr, *dv_ = nullptr;
};

// Halves the resolution: pad (0,1,0,1) + 3x3 stride-2 conv, or 2x2 average pool.
class Downsample {
 public:
  Downsample(ParamLayout& layout, const std::string& prefix, int ch, int H, int W, bool with_conv);
  void build(Ops& ops, int N);
  void plan(Arena& arena, int N) {}
  void forward(const Pass& ps, float* out, const float* x);
  void backward(const Pass& ps, float* dx, bool accumulate, const float* dout);
  int64_t macs() const;
  int64_t first_param() const { return conv_.w; }  // -1 without parameters

 private:
  int ch_, H_, W_;
  bool with_conv_;
  ConvLayer conv_;
  const float* x_ = nullptr;
};

// Doubles the resolution: nearest x2, then a 3x3 conv when with_conv.
class Upsample {
 public:
  Upsample(ParamLayout& layout, const std::string& prefix, int ch, int H, int W, bool with_conv);
  void build(Ops& ops, int N);
  void plan(Arena& arena, int N);
  void forward(const Pass& ps, float* out, const float* x);
  // dx is assigned (the input has one consumer).
  void backward(const Pass& ps, float* dx, const float* dout);
  int64_t macs() const;
  int64_t first_param() const { return conv_.w; }  // -1 without parameters

 private:
  int ch_, H_, W_;
  bool with_conv_;
  ConvLayer conv_;
  float* up_ = nullptr;   // nearest x2 of the input (the conv's input)
  float* dup_ = nullptr;  // backward temporary
};

}  // namespace ddpm
