#include "core/layers.h"

namespace ddpm {

// --- GroupNorm ---------------------------------------------------------------------

void GroupNormLayer::add(ParamLayout& layout, const std::string& name, int channels, Activation activation) {
  ch = channels;
  act = activation;
  w = layout.add(name + ".weight", {channels}, InitKind::kNormWeight);
  b = layout.add(name + ".bias", {channels}, InitKind::kNormBias);
}

void GroupNormLayer::forward(const Pass& ps, float* out, float* mean, float* rstd, const float* in, int HW) const {
  ps.ops->groupnorm_forward(out, mean, rstd, in, ps.param(w), ps.param(b), {ps.N, HW, ch, kGroups, act});
}

void GroupNormLayer::backward(const Pass& ps, float* din, GradWrite write, const float* dout, const float* in,
                              const float* mean, const float* rstd, int HW) const {
  ps.ops->groupnorm_backward(din, accumulates(write), ps.grad(w), ps.grad(b), dout, in, mean, rstd, ps.param(w),
                             ps.param(b), {ps.N, HW, ch, kGroups, act});
}

// --- Linear --------------------------------------------------------------------------

void LinearLayer::add(ParamLayout& layout, const std::string& name, int in_ch, int out_ch, LinearShape shape,
                      InitKind init) {
  in = in_ch;
  out = out_ch;
  std::vector<int64_t> dims{out_ch, in_ch};
  if (shape == LinearShape::kConv1x1) dims = {out_ch, in_ch, 1, 1};
  w = layout.add(name + ".weight", dims, init);
  b = layout.add(name + ".bias", {out_ch}, InitKind::kBias);
}

void LinearLayer::forward(const Pass& ps, float* y, GradWrite write, const float* x, int64_t M) const {
  ps.ops->linear_forward(y, accumulates(write), x, ps.param(w), ps.param(b), M, in, out);
}

void LinearLayer::backward(const Pass& ps, float* dx, GradWrite write, const float* dy, const float* x,
                           int64_t M) const {
  ps.ops->linear_backward(dx, accumulates(write), ps.grad(w), ps.grad(b), dy, x, ps.param(w), M, in, out);
}

// --- Convolution ---------------------------------------------------------------------

void ConvLayer::add(ParamLayout& layout, const std::string& name, int in_ch, int out_ch, InitKind init) {
  geometry.C = in_ch;
  geometry.O = out_ch;
  w = layout.add(name + ".weight", {out_ch, in_ch, geometry.KH, geometry.KW}, init);
  b = layout.add(name + ".bias", {out_ch}, InitKind::kBias);
}

void ConvLayer::build(Ops& ops, int N, int H, int W) {
  ConvSpec s = geometry;
  s.N = N, s.H = H, s.W = W;
  if (!op || !(op->spec() == s)) op = ops.make_conv2d(s);
}

int64_t ConvLayer::macs(int H, int W) const {
  ConvSpec s = geometry;
  s.H = H, s.W = W;
  return static_cast<int64_t>(s.out_h()) * s.out_w() * s.weight_count();
}

void ConvLayer::forward(const Pass& ps, float* y, GradWrite write, const float* x) const {
  op->forward(y, accumulates(write), x, ps.param(w), ps.param(b), ps.version);
}

void ConvLayer::backward(const Pass& ps, float* dx, GradWrite write, const float* dy, const float* x) const {
  op->backward(dx, accumulates(write), ps.grad(w), ps.grad(b), dy, x, ps.param(w), ps.version);
}

}  // namespace ddpm
