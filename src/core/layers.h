// The layers that blocks are made of: a parameter handle (offsets into the flat buffers,
// registered by name in pytorch_diffusion's naming) with the forward/backward pair that
// runs it on a backend. Activations are NHWC; N is the per-rank batch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/graph.h"
#include "core/params.h"

namespace ddpm {

constexpr int kGroups = 32;  // GroupNorm groups everywhere in the DDPM model

// GroupNorm(kGroups, eps 1e-6) over [N, HW, C]; mean, rstd [N, G] saved by forward.
struct GroupNormLayer {
  int64_t w = -1, b = -1;
  int ch = 0;
  Activation act = Activation::kNone;  // swish fused into the normalisation or not
  void add(ParamLayout& layout, const std::string& name, int channels, Activation activation);
  // out [N, HW, ch] = act(norm(in))
  void forward(const Pass& ps, float* out, float* mean, float* rstd, const float* in, int HW) const;
  // din [N, HW, ch] (assigned or added), dw, db += ; dout is the gradient of out
  void backward(const Pass& ps, float* din, GradWrite write, const float* dout, const float* in, const float* mean,
                const float* rstd, int HW) const;
};

// Whether a linear layer is stored as PyTorch's Linear [O, C] or a 1x1 Conv2d [O, C, 1, 1]
// (q, k, v, proj_out, nin_shortcut).
enum class LinearShape { kLinear, kConv1x1 };

// out [M, O] = in [M, C] · w^T + b
struct LinearLayer {
  int64_t w = -1, b = -1;
  int in = 0, out = 0;
  void add(ParamLayout& layout, const std::string& name, int in_ch, int out_ch, LinearShape shape, InitKind init);
  void forward(const Pass& ps, float* y, GradWrite write, const float* x, int64_t M) const;
  // dx [M, C] (null: skip), dw, db += ; dy [M, O]
  void backward(const Pass& ps, float* dx, GradWrite write, const float* dy, const float* x, int64_t M) const;
  int64_t macs(int64_t M) const { return M * in * out; }
};

// A 2-D convolution, weights OIHW; the backend primitive is built once per shape.
struct ConvLayer {
  int64_t w = -1, b = -1;
  ConvSpec geometry;  // kernel, stride and padding; build() fills in the sizes
  std::unique_ptr<Conv2d> op;
  void add(ParamLayout& layout, const std::string& name, int in_ch, int out_ch, InitKind init);
  void build(Ops& ops, int N, int H, int W);  // H, W of the input
  int64_t macs(int H, int W) const;           // per image
  // y [N, Ho, Wo, O] (assigned or added) = conv(x [N, H, W, C])
  void forward(const Pass& ps, float* y, GradWrite write, const float* x) const;
  // dx (null: skip; assigned or added), dw, db += ; dy
  void backward(const Pass& ps, float* dx, GradWrite write, const float* dy, const float* x) const;
};

}  // namespace ddpm
