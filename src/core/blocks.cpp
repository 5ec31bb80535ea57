#include "core/blocks.h"

#include "core/common.h"

namespace ddpm {
namespace {
// Arena shared slots used inside one block's backward (the U-Net uses kSlotModel+).
enum Slot { kSlot0 = 0, kSlot1 = 1, kSlot2 = 2, kSlot3 = 3 };
}  // namespace

// --- parameter handles ----------------------------------------------------------------

void NormParams::add(ParamLayout& layout, const std::string& name, int channels) {
  ch = channels;
  w = layout.add(name + ".weight", {channels}, InitKind::kNormWeight);
  b = layout.add(name + ".bias", {channels}, InitKind::kNormBias);
}

void LinearParams::add(ParamLayout& layout, const std::string& name, int in_ch, int out_ch, bool as_conv1x1,
                       InitKind init) {
  in = in_ch;
  out = out_ch;
  std::vector<int64_t> shape{out_ch, in_ch};
  if (as_conv1x1) shape = {out_ch, in_ch, 1, 1};
  w = layout.add(name + ".weight", shape, init);
  b = layout.add(name + ".bias", {out_ch}, InitKind::kBias);
}

void ConvLayer::add(ParamLayout& layout, const std::string& name, int in_ch, int out_ch, InitKind init) {
  geometry.C = in_ch;
  geometry.O = out_ch;
  w = layout.add(name + ".weight", {out_ch, in_ch, geometry.K, geometry.K}, init);
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
  return static_cast<int64_t>(s.out_h()) * s.out_w() * s.O * s.C * s.K * s.K;
}

// --- ResBlock --------------------------------------------------------------------------

ResBlock::ResBlock(ParamLayout& layout, const std::string& prefix, int in_ch, int out_ch, int temb_ch, int H, int W,
                   float dropout, uint32_t layer_id)
    : in_ch_(in_ch), out_ch_(out_ch), temb_ch_(temb_ch), H_(H), W_(W), dropout_(dropout), layer_id_(layer_id),
      has_nin_(in_ch != out_ch) {
  norm1_.add(layout, prefix + ".norm1", in_ch);
  conv1_.add(layout, prefix + ".conv1", in_ch, out_ch, InitKind::kWeight);
  temb_proj_.add(layout, prefix + ".temb_proj", temb_ch, out_ch, false, InitKind::kWeight);
  norm2_.add(layout, prefix + ".norm2", out_ch);
  conv2_.add(layout, prefix + ".conv2", out_ch, out_ch, InitKind::kZeroWeight);
  if (has_nin_) nin_.add(layout, prefix + ".nin_shortcut", in_ch, out_ch, true, InitKind::kWeight);
}

void ResBlock::build(Ops& ops, int N) {
  conv1_.build(ops, N, H_, W_);
  conv2_.build(ops, N, H_, W_);
}

void ResBlock::plan(Arena& arena, int N) {
  const int64_t hw = static_cast<int64_t>(H_) * W_;
  mean1_ = arena.take(N * kGroups);
  rstd1_ = arena.take(N * kGroups);
  h1_ = arena.take(N * hw * in_ch_);
  h2_ = arena.take(N * hw * out_ch_);
  mean2_ = arena.take(N * kGroups);
  rstd2_ = arena.take(N * kGroups);
  h3_ = arena.take(N * hw * out_ch_);
  tp_ = arena.take(static_cast<int64_t>(N) * out_ch_);
  dh3_ = arena.shared(kSlot0, N * hw * out_ch_);
  dh2_ = arena.shared(kSlot1, N * hw * out_ch_);
  dh1_ = arena.shared(kSlot2, N * hw * in_ch_);
  dtp_ = arena.shared(kSlot3, static_cast<int64_t>(N) * out_ch_);
}

void ResBlock::forward(const Pass& ps, float* out, const float* x, const float* temb_act) {
  Ops& ops = *ps.ops;
  const int N = ps.N, HW = H_ * W_;
  x_ = x;
  temb_act_ = temb_act;
  ops.groupnorm_forward(h1_, mean1_, rstd1_, x, ps.p(norm1_.w), ps.p(norm1_.b),
                        {N, HW, in_ch_, kGroups, Activation::kSwish});
  conv1_.op->forward(h2_, false, h1_, ps.p(conv1_.w), ps.p(conv1_.b), ps.version);
  ops.linear_forward(tp_, false, temb_act, ps.p(temb_proj_.w), ps.p(temb_proj_.b), N, temb_ch_, out_ch_);
  ops.add_channel_bias(h2_, tp_, N, HW, out_ch_);
  ops.groupnorm_forward(h3_, mean2_, rstd2_, h2_, ps.p(norm2_.w), ps.p(norm2_.b),
                        {N, HW, out_ch_, kGroups, Activation::kSwish});
  if (ps.training && dropout_ > 0) {
    DropoutKey key = ps.dropout;
    key.layer = layer_id_;
    ops.dropout_apply(h3_, dropout_, key, N, static_cast<int64_t>(HW) * out_ch_);
  }
  // The skip path goes into `out` first; conv2 then adds its result in place.
  if (has_nin_) {
    ops.linear_forward(out, false, x, ps.p(nin_.w), ps.p(nin_.b), static_cast<int64_t>(N) * HW, in_ch_, out_ch_);
  } else {
    ops.copy(out, x, static_cast<int64_t>(N) * HW * in_ch_);
  }
  conv2_.op->forward(out, true, h3_, ps.p(conv2_.w), ps.p(conv2_.b), ps.version);
}

void ResBlock::backward(const Pass& ps, float* dx, bool accumulate, float* dtemb_act, const float* dout) {
  Ops& ops = *ps.ops;
  const int N = ps.N, HW = H_ * W_;
  const int64_t M = static_cast<int64_t>(N) * HW;
  conv2_.op->backward(dh3_, false, ps.g(conv2_.w), ps.g(conv2_.b), dout, h3_, ps.p(conv2_.w), ps.version);
  if (ps.training && dropout_ > 0) {
    DropoutKey key = ps.dropout;
    key.layer = layer_id_;
    ops.dropout_apply(dh3_, dropout_, key, N, static_cast<int64_t>(HW) * out_ch_);
  }
  ops.groupnorm_backward(dh2_, false, ps.g(norm2_.w), ps.g(norm2_.b), dh3_, h2_, mean2_, rstd2_, ps.p(norm2_.w),
                         ps.p(norm2_.b), {N, HW, out_ch_, kGroups, Activation::kSwish});
  ops.sum_over_hw(dtp_, dh2_, N, HW, out_ch_);
  ops.linear_backward(dtemb_act, true, ps.g(temb_proj_.w), ps.g(temb_proj_.b), dtp_, temb_act_, ps.p(temb_proj_.w),
                      N, temb_ch_, out_ch_);
  conv1_.op->backward(dh1_, false, ps.g(conv1_.w), ps.g(conv1_.b), dh2_, h1_, ps.p(conv1_.w), ps.version);
  if (has_nin_) {
    ops.linear_backward(dx, accumulate, ps.g(nin_.w), ps.g(nin_.b), dout, x_, ps.p(nin_.w), M, in_ch_, out_ch_);
  } else if (accumulate) {
    ops.add_inplace(dx, dout, M * in_ch_);
  } else {
    ops.copy(dx, dout, M * in_ch_);
  }
  ops.groupnorm_backward(dx, true, ps.g(norm1_.w), ps.g(norm1_.b), dh1_, x_, mean1_, rstd1_, ps.p(norm1_.w),
                         ps.p(norm1_.b), {N, HW, in_ch_, kGroups, Activation::kSwish});
}

int64_t ResBlock::macs() const {
  int64_t m = conv1_.macs(H_, W_) + conv2_.macs(H_, W_) + static_cast<int64_t>(temb_ch_) * out_ch_;
  if (has_nin_) m += static_cast<int64_t>(H_) * W_ * in_ch_ * out_ch_;
  return m;
}

// --- AttnBlock -------------------------------------------------------------------------

AttnBlock::AttnBlock(ParamLayout& layout, const std::string& prefix, int ch, int H, int W) : ch_(ch), L_(H * W) {
  norm_.add(layout, prefix + ".norm", ch);
  q_.add(layout, prefix + ".q", ch, ch, true, InitKind::kWeight);
  k_.add(layout, prefix + ".k", ch, ch, true, InitKind::kWeight);
  v_.add(layout, prefix + ".v", ch, ch, true, InitKind::kWeight);
  proj_out_.add(layout, prefix + ".proj_out", ch, ch, true, InitKind::kZeroWeight);
}

void AttnBlock::plan(Arena& arena, int N) {
  const int64_t act = static_cast<int64_t>(N) * L_ * ch_;
  mean_ = arena.take(N * kGroups);
  rstd_ = arena.take(N * kGroups);
  hn_ = arena.take(act);
  q_act_ = arena.take(act);
  k_act_ = arena.take(act);
  v_act_ = arena.take(act);
  p_ = arena.take(static_cast<int64_t>(N) * L_ * L_);
  a_ = arena.take(act);
  da_ = arena.shared(kSlot0, act);
  dq_ = arena.shared(kSlot1, act);
  dk_ = arena.shared(kSlot2, act);
  dv_ = arena.shared(kSlot3, act);
}

void AttnBlock::forward(const Pass& ps, float* out, const float* x) {
  Ops& ops = *ps.ops;
  const int N = ps.N;
  const int64_t M = static_cast<int64_t>(N) * L_;
  x_ = x;
  ops.groupnorm_forward(hn_, mean_, rstd_, x, ps.p(norm_.w), ps.p(norm_.b),
                        {N, L_, ch_, kGroups, Activation::kNone});
  ops.linear_forward(q_act_, false, hn_, ps.p(q_.w), ps.p(q_.b), M, ch_, ch_);
  ops.linear_forward(k_act_, false, hn_, ps.p(k_.w), ps.p(k_.b), M, ch_, ch_);
  ops.linear_forward(v_act_, false, hn_, ps.p(v_.w), ps.p(v_.b), M, ch_, ch_);
  ops.attention_forward(a_, p_, q_act_, k_act_, v_act_, N, L_, ch_);
  ops.copy(out, x, M * ch_);
  ops.linear_forward(out, true, a_, ps.p(proj_out_.w), ps.p(proj_out_.b), M, ch_, ch_);
}

void AttnBlock::backward(const Pass& ps, float* dx, bool accumulate, const float* dout) {
  Ops& ops = *ps.ops;
  const int N = ps.N;
  const int64_t M = static_cast<int64_t>(N) * L_;
  ops.linear_backward(da_, false, ps.g(proj_out_.w), ps.g(proj_out_.b), dout, a_, ps.p(proj_out_.w), M, ch_, ch_);
  ops.attention_backward(dq_, dk_, dv_, da_, p_, q_act_, k_act_, v_act_, N, L_, ch_);
  float* dhn = da_;  // da is dead now
  ops.linear_backward(dhn, false, ps.g(q_.w), ps.g(q_.b), dq_, hn_, ps.p(q_.w), M, ch_, ch_);
  ops.linear_backward(dhn, true, ps.g(k_.w), ps.g(k_.b), dk_, hn_, ps.p(k_.w), M, ch_, ch_);
  ops.linear_backward(dhn, true, ps.g(v_.w), ps.g(v_.b), dv_, hn_, ps.p(v_.w), M, ch_, ch_);
  if (accumulate) {
    ops.add_inplace(dx, dout, M * ch_);
  } else {
    ops.copy(dx, dout, M * ch_);
  }
  ops.groupnorm_backward(dx, true, ps.g(norm_.w), ps.g(norm_.b), dhn, x_, mean_, rstd_, ps.p(norm_.w), ps.p(norm_.b),
                         {N, L_, ch_, kGroups, Activation::kNone});
}

int64_t AttnBlock::macs() const {
  return 4 * static_cast<int64_t>(L_) * ch_ * ch_ + 2 * static_cast<int64_t>(L_) * L_ * ch_;
}

// --- Downsample / Upsample -------------------------------------------------------------

Downsample::Downsample(ParamLayout& layout, const std::string& prefix, int ch, int H, int W, bool with_conv)
    : ch_(ch), H_(H), W_(W), with_conv_(with_conv) {
  if (!with_conv) return;
  conv_.geometry.as_downsample();
  conv_.add(layout, prefix + ".conv", ch, ch, InitKind::kWeight);
}

void Downsample::build(Ops& ops, int N) {
  if (with_conv_) conv_.build(ops, N, H_, W_);
}

void Downsample::forward(const Pass& ps, float* out, const float* x) {
  x_ = x;
  if (with_conv_) {
    conv_.op->forward(out, false, x, ps.p(conv_.w), ps.p(conv_.b), ps.version);
  } else {
    ps.ops->avgpool2x_forward(out, x, ps.N, H_, W_, ch_);
  }
}

void Downsample::backward(const Pass& ps, float* dx, bool accumulate, const float* dout) {
  if (with_conv_) {
    conv_.op->backward(dx, accumulate, ps.g(conv_.w), ps.g(conv_.b), dout, x_, ps.p(conv_.w), ps.version);
  } else {
    ps.ops->avgpool2x_backward(dx, accumulate, dout, ps.N, H_, W_, ch_);
  }
}

int64_t Downsample::macs() const { return with_conv_ ? conv_.macs(H_, W_) : 0; }

Upsample::Upsample(ParamLayout& layout, const std::string& prefix, int ch, int H, int W, bool with_conv)
    : ch_(ch), H_(H), W_(W), with_conv_(with_conv) {
  if (with_conv) conv_.add(layout, prefix + ".conv", ch, ch, InitKind::kWeight);
}

void Upsample::build(Ops& ops, int N) {
  if (with_conv_) conv_.build(ops, N, 2 * H_, 2 * W_);
}

void Upsample::plan(Arena& arena, int N) {
  if (!with_conv_) return;
  const int64_t n = static_cast<int64_t>(N) * 4 * H_ * W_ * ch_;
  up_ = arena.take(n);
  dup_ = arena.shared(kSlot0, n);
}

void Upsample::forward(const Pass& ps, float* out, const float* x) {
  if (!with_conv_) {
    ps.ops->upsample2x_forward(out, x, ps.N, H_, W_, ch_);
    return;
  }
  ps.ops->upsample2x_forward(up_, x, ps.N, H_, W_, ch_);
  conv_.op->forward(out, false, up_, ps.p(conv_.w), ps.p(conv_.b), ps.version);
}

void Upsample::backward(const Pass& ps, float* dx, const float* dout) {
  if (!with_conv_) {
    ps.ops->upsample2x_backward(dx, dout, ps.N, H_, W_, ch_);
    return;
  }
  conv_.op->backward(dup_, false, ps.g(conv_.w), ps.g(conv_.b), dout, up_, ps.p(conv_.w), ps.version);
  ps.ops->upsample2x_backward(dx, dup_, ps.N, H_, W_, ch_);
}

int64_t Upsample::macs() const { return with_conv_ ? conv_.macs(2 * H_, 2 * W_) : 0; }

}  // namespace ddpm
