// The nodes DDPM's U-Net is built from (unet.cpp lists them): each registers its
// parameters by name (pytorch_diffusion naming), plans its activations in the arena and
// has a forward/backward pair. Shapes are NHWC; `N` is the per-rank batch. Each block
// also has a typed forward/backward for direct use (the gradient checks call them).
#pragma once

#include <cstdint>
#include <string>

#include "core/graph.h"
#include "core/layers.h"

namespace ddpm {

// temb_act [N, 4ch] = swish(dense1(swish(dense0(timestep_embedding(t [N], ch)))))
class TimeEmbedding : public Node {
 public:
  TimeEmbedding(ParamLayout& layout, int ch, int temb_ch);
  void plan(Arena& arena, int N, PlanMode mode) override;
  void forward(const Pass& ps, float* out, Span<const float*> in) override;
  void backward(const Pass& ps, Span<InputGrad> din, const float* dout) override;
  int64_t macs() const override { return dense0_.macs(1) + dense1_.macs(1); }
  int64_t first_param() const override { return dense0_.w; }

 private:
  int ch_, temb_ch_;
  LinearLayer dense0_, dense1_;
  float *emb_ = nullptr, *t0_ = nullptr, *a0_ = nullptr, *temb_ = nullptr;  // saved
  float *dtemb_ = nullptr, *da0_ = nullptr;                                  // backward
};

// One convolution as a node (conv_in, conv_out): out = conv(x), k x k, stride 1, "same"
// padding (3x3 in the U-Net).
class ConvNode : public Node {
 public:
  ConvNode(ParamLayout& layout, const std::string& name, int in_ch, int out_ch, int H, int W, InitKind init,
           int kernel = 3);
  void build(Ops& ops, int N) override { conv_.build(ops, N, H_, W_); }
  void forward(const Pass& ps, float* out, Span<const float*> in) override;
  void backward(const Pass& ps, Span<InputGrad> din, const float* dout) override;
  int64_t macs() const override { return conv_.macs(H_, W_); }
  int64_t first_param() const override { return conv_.w; }

 private:
  int H_, W_;
  ConvLayer conv_;
  const float* x_ = nullptr;
};

// out = swish(GroupNorm(x)) as a node (norm_out, before the head's convolution).
class NormSwish : public Node {
 public:
  NormSwish(ParamLayout& layout, const std::string& name, int ch, int H, int W);
  void plan(Arena& arena, int N, PlanMode mode) override;
  void forward(const Pass& ps, float* out, Span<const float*> in) override;
  void backward(const Pass& ps, Span<InputGrad> din, const float* dout) override;
  int64_t first_param() const override { return norm_.w; }

 private:
  int HW_;
  GroupNormLayer norm_;
  const float* x_ = nullptr;
  float *mean_ = nullptr, *rstd_ = nullptr;
};

// h = conv1(swish(norm1(x))) + temb_proj(temb_act); h = conv2(dropout(swish(norm2(h))));
// out = nin_shortcut(x) or x, + h. Inputs: x [N, H, W, in_ch], temb_act [N, temb_ch].
// The inner activations h1..h3 are kept for backward (PlanMode::kTraining) or live in
// slots shared by all blocks: forward only, or recomputed by backward from x and
// temb_act (kTrainingRecompute; the same computation, so the same bits).
class ResBlock : public Node {
 public:
  ResBlock(ParamLayout& layout, const std::string& prefix, int in_ch, int out_ch, int temb_ch, int H, int W,
           float dropout, uint32_t layer_id);
  void build(Ops& ops, int N) override;
  void plan(Arena& arena, int N, PlanMode mode) override;
  void forward(const Pass& ps, float* out, const float* x, const float* temb_act);
  void backward(const Pass& ps, InputGrad dx, InputGrad dtemb_act, const float* dout);
  void forward(const Pass& ps, float* out, Span<const float*> in) override { forward(ps, out, in[0], in[1]); }
  void backward(const Pass& ps, Span<InputGrad> din, const float* dout) override {
    backward(ps, din[0], din[1], dout);
  }
  int64_t macs() const override;
  int64_t first_param() const override { return norm1_.w; }
  int in_ch() const { return in_ch_; }
  int out_ch() const { return out_ch_; }

 private:
  // h3 = dropout(swish(norm2(conv1(swish(norm1(x))) + tp))), keeping h1, h2 and the
  // norms' statistics, from tp = temb_proj(temb_act) already in tp_: all of forward but
  // the time projection, conv2 and the skip path.
  void inner_forward(const Pass& ps, const float* x);

  int in_ch_, out_ch_, temb_ch_, H_, W_;
  float dropout_;
  uint32_t layer_id_;
  GroupNormLayer norm1_, norm2_;
  ConvLayer conv1_, conv2_;
  LinearLayer temb_proj_, nin_;
  bool has_nin_;
  bool recompute_ = false;  // backward first recomputes inner_forward
  // Saved by forward.
  const float* x_ = nullptr;
  const float* temb_act_ = nullptr;
  float *mean1_ = nullptr, *rstd1_ = nullptr, *h1_ = nullptr, *h2_ = nullptr;
  float *mean2_ = nullptr, *rstd2_ = nullptr, *h3_ = nullptr, *tp_ = nullptr;
  // Backward temporaries (arena shared slots).
  float *dh1_ = nullptr, *dh2_ = nullptr, *dh3_ = nullptr, *dtp_ = nullptr;
};

// out = x + proj_out(attention(q(h), k(h), v(h))), h = norm(x)
class AttnBlock : public Node {
 public:
  AttnBlock(ParamLayout& layout, const std::string& prefix, int ch, int H, int W);
  void plan(Arena& arena, int N, PlanMode mode) override;
  void forward(const Pass& ps, float* out, const float* x);
  void backward(const Pass& ps, InputGrad dx, const float* dout);
  void forward(const Pass& ps, float* out, Span<const float*> in) override { forward(ps, out, in[0]); }
  void backward(const Pass& ps, Span<InputGrad> din, const float* dout) override { backward(ps, din[0], dout); }
  int64_t macs() const override;
  int64_t first_param() const override { return norm_.w; }

 private:
  int ch_, L_;
  GroupNormLayer norm_;
  LinearLayer q_, k_, v_, proj_out_;
  const float* x_ = nullptr;
  float *mean_ = nullptr, *rstd_ = nullptr, *hn_ = nullptr, *q_act_ = nullptr, *k_act_ = nullptr, *v_act_ = nullptr;
  float *p_ = nullptr, *a_ = nullptr;
  float *da_ = nullptr, *dq_ = nullptr, *dk_ = nullptr, *dv_ = nullptr;
};

// Whether the resampling blocks carry a 3x3 convolution (resamp_with_conv).
enum class Resample { kWithConv, kWithoutConv };

// What the two resampling nodes share: the optional 3x3 convolution (its primitives,
// MACs and parameters), applied to the input scaled by conv_scale (1: the input itself,
// 2: its nearest-neighbour upsampling).
class ResampleNode : public Node {
 public:
  void build(Ops& ops, int N) override;
  int64_t macs() const override;
  int64_t first_param() const override { return conv_.w; }  // -1 without parameters

 protected:
  ResampleNode(ParamLayout& layout, const std::string& prefix, int ch, int H, int W, Resample kind, int conv_scale,
               bool strided);
  int ch_, H_, W_, conv_scale_;
  bool with_conv_;
  ConvLayer conv_;
};

// Halves the resolution: pad (0,1,0,1) + 3x3 stride-2 conv, or 2x2 average pool.
class Downsample : public ResampleNode {
 public:
  Downsample(ParamLayout& layout, const std::string& prefix, int ch, int H, int W, Resample kind)
      : ResampleNode(layout, prefix, ch, H, W, kind, 1, /*strided=*/true) {}
  void forward(const Pass& ps, float* out, Span<const float*> in) override;
  void backward(const Pass& ps, Span<InputGrad> din, const float* dout) override;

 private:
  const float* x_ = nullptr;
};

// Doubles the resolution: nearest x2, then a 3x3 conv with Resample::kWithConv. The
// nearest-neighbour backward assigns, so its input must have no other reader.
class Upsample : public ResampleNode {
 public:
  Upsample(ParamLayout& layout, const std::string& prefix, int ch, int H, int W, Resample kind)
      : ResampleNode(layout, prefix, ch, H, W, kind, 2, /*strided=*/false) {}
  void plan(Arena& arena, int N, PlanMode mode) override;
  void forward(const Pass& ps, float* out, Span<const float*> in) override;
  void backward(const Pass& ps, Span<InputGrad> din, const float* dout) override;

 private:
  float* up_ = nullptr;   // nearest x2 of the input (the conv's input)
  float* dup_ = nullptr;  // backward temporary
};

// out [N, H, W, Ca + Cb] = [a | b] along channels (the U-Net's skip connections). The
// split in backward assigns, so both inputs must have no later reader.
class Concat : public Node {
 public:
  Concat(int a_ch, int b_ch, int H, int W) : a_ch_(a_ch), b_ch_(b_ch), HW_(H * W) {}
  void forward(const Pass& ps, float* out, Span<const float*> in) override;
  void backward(const Pass& ps, Span<InputGrad> din, const float* dout) override;

 private:
  int a_ch_, b_ch_, HW_;
};

}  // namespace ddpm
