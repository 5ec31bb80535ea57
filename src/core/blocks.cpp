#include "core/blocks.h"

#include "core/common.h"

namespace ddpm {

// --- TimeEmbedding ---------------------------------------------------------------------

TimeEmbedding::TimeEmbedding(ParamLayout& layout, int ch, int temb_ch) : ch_(ch), temb_ch_(temb_ch) {
  dense0_.add(layout, "temb.dense.0", ch, temb_ch, LinearShape::kLinear, InitKind::kWeight);
  dense1_.add(layout, "temb.dense.1", temb_ch, temb_ch, LinearShape::kLinear, InitKind::kWeight);
}

void TimeEmbedding::plan(Arena& arena, int N, PlanMode mode) {
  const int64_t n = static_cast<int64_t>(N) * temb_ch_;
  for (float** p : {&emb_, &t0_, &a0_, &temb_}) *p = arena.take(n);
  if (with_backward(mode)) {
    dtemb_ = arena.take(n);
    da0_ = arena.take(n);
  }
}

void TimeEmbedding::forward(const Pass& ps, float* out, Span<const float*> in) {
  Ops& ops = *ps.ops;
  const int64_t nt = static_cast<int64_t>(ps.N) * temb_ch_;
  ops.timestep_embedding(emb_, in[0], ps.N, ch_);
  dense0_.forward(ps, t0_, GradWrite::kAssign, emb_, ps.N);
  ops.swish_forward(a0_, t0_, nt);
  dense1_.forward(ps, temb_, GradWrite::kAssign, a0_, ps.N);
  ops.swish_forward(out, temb_, nt);
}

void TimeEmbedding::backward(const Pass& ps, Span<InputGrad>, const float* dout) {
  Ops& ops = *ps.ops;
  const int64_t nt = static_cast<int64_t>(ps.N) * temb_ch_;
  ops.swish_backward(dtemb_, dout, temb_, nt);
  dense1_.backward(ps, da0_, GradWrite::kAssign, dtemb_, a0_, ps.N);
  ops.swish_backward(dtemb_, da0_, t0_, nt);
  dense0_.backward(ps, nullptr, GradWrite::kAssign, dtemb_, emb_, ps.N);  // t needs no gradient
}

// --- ConvNode / NormSwish --------------------------------------------------------------

ConvNode::ConvNode(ParamLayout& layout, const std::string& name, int in_ch, int out_ch, int H, int W, InitKind init,
                   int kernel)
    : H_(H), W_(W) {
  conv_.geometry.with_kernel(kernel, kernel, 1, kernel / 2, kernel / 2);
  conv_.add(layout, name, in_ch, out_ch, init);
}

void ConvNode::forward(const Pass& ps, float* out, Span<const float*> in) {
  x_ = in[0];
  conv_.forward(ps, out, GradWrite::kAssign, x_);
}

void ConvNode::backward(const Pass& ps, Span<InputGrad> din, const float* dout) {
  conv_.backward(ps, din[0].data, din[0].write, dout, x_);
}

NormSwish::NormSwish(ParamLayout& layout, const std::string& name, int ch, int H, int W) : HW_(H * W) {
  norm_.add(layout, name, ch, Activation::kSwish);
}

void NormSwish::plan(Arena& arena, int N, PlanMode) {
  mean_ = arena.take(N * kGroups);
  rstd_ = arena.take(N * kGroups);
}

void NormSwish::forward(const Pass& ps, float* out, Span<const float*> in) {
  x_ = in[0];
  norm_.forward(ps, out, mean_, rstd_, x_, HW_);
}

void NormSwish::backward(const Pass& ps, Span<InputGrad> din, const float* dout) {
  norm_.backward(ps, din[0].data, din[0].write, dout, x_, mean_, rstd_, HW_);
}

// --- ResBlock --------------------------------------------------------------------------

ResBlock::ResBlock(ParamLayout& layout, const std::string& prefix, int in_ch, int out_ch, int temb_ch, int H, int W,
                   float dropout, uint32_t layer_id)
    : in_ch_(in_ch), out_ch_(out_ch), temb_ch_(temb_ch), H_(H), W_(W), dropout_(dropout), layer_id_(layer_id),
      has_nin_(in_ch != out_ch) {
  norm1_.add(layout, prefix + ".norm1", in_ch, Activation::kSwish);
  conv1_.add(layout, prefix + ".conv1", in_ch, out_ch, InitKind::kWeight);
  temb_proj_.add(layout, prefix + ".temb_proj", temb_ch, out_ch, LinearShape::kLinear, InitKind::kWeight);
  norm2_.add(layout, prefix + ".norm2", out_ch, Activation::kSwish);
  conv2_.add(layout, prefix + ".conv2", out_ch, out_ch, InitKind::kZeroWeight);
  if (has_nin_) nin_.add(layout, prefix + ".nin_shortcut", in_ch, out_ch, LinearShape::kConv1x1, InitKind::kWeight);
}

void ResBlock::build(Ops& ops, int N) {
  conv1_.build(ops, N, H_, W_);
  conv2_.build(ops, N, H_, W_);
}

void ResBlock::plan(Arena& arena, int N, PlanMode mode) {
  const int64_t hw = static_cast<int64_t>(H_) * W_;
  recompute_ = mode == PlanMode::kTrainingRecompute;
  // Kept per block only when backward reads them as forward left them.
  const bool kept = mode == PlanMode::kTraining;
  auto inner = [&](ArenaSlot slot, int64_t n) { return kept ? arena.take(n) : arena.shared(slot, n); };
  mean1_ = arena.take(N * kGroups);
  rstd1_ = arena.take(N * kGroups);
  h1_ = inner(kBlockInner0, N * hw * in_ch_);
  h2_ = inner(kBlockInner1, N * hw * out_ch_);
  mean2_ = arena.take(N * kGroups);
  rstd2_ = arena.take(N * kGroups);
  h3_ = inner(kBlockInner2, N * hw * out_ch_);
  tp_ = arena.take(static_cast<int64_t>(N) * out_ch_);
  if (!with_backward(mode)) return;
  dh3_ = arena.shared(kBlockScratch0, N * hw * out_ch_);
  dh2_ = arena.shared(kBlockScratch1, N * hw * out_ch_);
  dh1_ = arena.shared(kBlockScratch2, N * hw * in_ch_);
  dtp_ = arena.shared(kBlockScratch3, static_cast<int64_t>(N) * out_ch_);
}

void ResBlock::inner_forward(const Pass& ps, const float* x) {
  Ops& ops = *ps.ops;
  const int N = ps.N, HW = H_ * W_;
  norm1_.forward(ps, h1_, mean1_, rstd1_, x, HW);
  conv1_.forward(ps, h2_, GradWrite::kAssign, h1_);
  ops.add_channel_bias(h2_, tp_, N, HW, out_ch_);
  norm2_.forward(ps, h3_, mean2_, rstd2_, h2_, HW);
  if (ps.training && dropout_ > 0) {
    DropoutKey key = ps.dropout;
    key.layer = layer_id_;
    ops.dropout_apply(h3_, dropout_, key, N, static_cast<int64_t>(HW) * out_ch_);
  }
}

void ResBlock::forward(const Pass& ps, float* out, const float* x, const float* temb_act) {
  Ops& ops = *ps.ops;
  const int N = ps.N, HW = H_ * W_;
  x_ = x;
  temb_act_ = temb_act;
  temb_proj_.forward(ps, tp_, GradWrite::kAssign, temb_act, N);  // tp_ is kept in every plan
  inner_forward(ps, x);
  // The skip path goes into `out` first; conv2 then adds its result in place.
  if (has_nin_) {
    nin_.forward(ps, out, GradWrite::kAssign, x, static_cast<int64_t>(N) * HW);
  } else {
    ops.copy(out, x, static_cast<int64_t>(N) * HW * in_ch_);
  }
  conv2_.forward(ps, out, GradWrite::kAdd, h3_);
}

void ResBlock::backward(const Pass& ps, InputGrad dx, InputGrad dtemb_act, const float* dout) {
  DDPM_CHECK(dx.data != nullptr && dtemb_act.data != nullptr, "a ResBlock's inputs always take gradients");
  Ops& ops = *ps.ops;
  const int N = ps.N, HW = H_ * W_;
  const int64_t M = static_cast<int64_t>(N) * HW;
  if (recompute_) inner_forward(ps, x_);
  conv2_.backward(ps, dh3_, GradWrite::kAssign, dout, h3_);
  if (ps.training && dropout_ > 0) {
    DropoutKey key = ps.dropout;
    key.layer = layer_id_;
    ops.dropout_apply(dh3_, dropout_, key, N, static_cast<int64_t>(HW) * out_ch_);
  }
  norm2_.backward(ps, dh2_, GradWrite::kAssign, dh3_, h2_, mean2_, rstd2_, HW);
  ops.sum_over_hw(dtp_, dh2_, N, HW, out_ch_);
  temb_proj_.backward(ps, dtemb_act.data, dtemb_act.write, dtp_, temb_act_, N);
  conv1_.backward(ps, dh1_, GradWrite::kAssign, dh2_, h1_);
  // dx = the skip path's gradient, then the residual branch's is added through norm1.
  if (has_nin_) {
    nin_.backward(ps, dx.data, dx.write, dout, x_, M);
  } else if (accumulates(dx.write)) {
    ops.add_inplace(dx.data, dout, M * in_ch_);
  } else {
    ops.copy(dx.data, dout, M * in_ch_);
  }
  norm1_.backward(ps, dx.data, GradWrite::kAdd, dh1_, x_, mean1_, rstd1_, HW);
}

int64_t ResBlock::macs() const {
  int64_t m = conv1_.macs(H_, W_) + conv2_.macs(H_, W_) + temb_proj_.macs(1);
  if (has_nin_) m += nin_.macs(static_cast<int64_t>(H_) * W_);
  return m;
}

// --- AttnBlock -------------------------------------------------------------------------

AttnBlock::AttnBlock(ParamLayout& layout, const std::string& prefix, int ch, int H, int W) : ch_(ch), L_(H * W) {
  norm_.add(layout, prefix + ".norm", ch, Activation::kNone);
  q_.add(layout, prefix + ".q", ch, ch, LinearShape::kConv1x1, InitKind::kWeight);
  k_.add(layout, prefix + ".k", ch, ch, LinearShape::kConv1x1, InitKind::kWeight);
  v_.add(layout, prefix + ".v", ch, ch, LinearShape::kConv1x1, InitKind::kWeight);
  proj_out_.add(layout, prefix + ".proj_out", ch, ch, LinearShape::kConv1x1, InitKind::kZeroWeight);
}

void AttnBlock::plan(Arena& arena, int N, PlanMode mode) {
  const int64_t act = static_cast<int64_t>(N) * L_ * ch_;
  mean_ = arena.take(N * kGroups);
  rstd_ = arena.take(N * kGroups);
  hn_ = arena.take(act);
  q_act_ = arena.take(act);
  k_act_ = arena.take(act);
  v_act_ = arena.take(act);
  p_ = arena.take(static_cast<int64_t>(N) * L_ * L_);
  a_ = arena.take(act);
  if (!with_backward(mode)) return;
  da_ = arena.shared(kBlockScratch0, act);
  dq_ = arena.shared(kBlockScratch1, act);
  dk_ = arena.shared(kBlockScratch2, act);
  dv_ = arena.shared(kBlockScratch3, act);
}

void AttnBlock::forward(const Pass& ps, float* out, const float* x) {
  const int64_t M = static_cast<int64_t>(ps.N) * L_;
  x_ = x;
  norm_.forward(ps, hn_, mean_, rstd_, x, L_);
  q_.forward(ps, q_act_, GradWrite::kAssign, hn_, M);
  k_.forward(ps, k_act_, GradWrite::kAssign, hn_, M);
  v_.forward(ps, v_act_, GradWrite::kAssign, hn_, M);
  ps.ops->attention_forward(a_, p_, q_act_, k_act_, v_act_, ps.N, L_, ch_);
  ps.ops->copy(out, x, M * ch_);
  proj_out_.forward(ps, out, GradWrite::kAdd, a_, M);
}

void AttnBlock::backward(const Pass& ps, InputGrad dx, const float* dout) {
  DDPM_CHECK(dx.data != nullptr, "an AttnBlock's input always takes a gradient");
  Ops& ops = *ps.ops;
  const int64_t M = static_cast<int64_t>(ps.N) * L_;
  proj_out_.backward(ps, da_, GradWrite::kAssign, dout, a_, M);
  ops.attention_backward(dq_, dk_, dv_, da_, p_, q_act_, k_act_, v_act_, ps.N, L_, ch_);
  float* dhn = da_;  // da is dead now
  q_.backward(ps, dhn, GradWrite::kAssign, dq_, hn_, M);
  k_.backward(ps, dhn, GradWrite::kAdd, dk_, hn_, M);
  v_.backward(ps, dhn, GradWrite::kAdd, dv_, hn_, M);
  if (accumulates(dx.write)) {
    ops.add_inplace(dx.data, dout, M * ch_);
  } else {
    ops.copy(dx.data, dout, M * ch_);
  }
  norm_.backward(ps, dx.data, GradWrite::kAdd, dhn, x_, mean_, rstd_, L_);
}

int64_t AttnBlock::macs() const {
  return 4 * static_cast<int64_t>(L_) * ch_ * ch_ + 2 * static_cast<int64_t>(L_) * L_ * ch_;
}

// --- Downsample / Upsample / Concat ----------------------------------------------------

ResampleNode::ResampleNode(ParamLayout& layout, const std::string& prefix, int ch, int H, int W, Resample kind,
                           int conv_scale, bool strided)
    : ch_(ch), H_(H), W_(W), conv_scale_(conv_scale), with_conv_(kind == Resample::kWithConv) {
  if (!with_conv_) return;
  if (strided) conv_.geometry.as_downsample();
  conv_.add(layout, prefix + ".conv", ch, ch, InitKind::kWeight);
}

void ResampleNode::build(Ops& ops, int N) {
  if (with_conv_) conv_.build(ops, N, conv_scale_ * H_, conv_scale_ * W_);
}

int64_t ResampleNode::macs() const { return with_conv_ ? conv_.macs(conv_scale_ * H_, conv_scale_ * W_) : 0; }

void Downsample::forward(const Pass& ps, float* out, Span<const float*> in) {
  x_ = in[0];
  if (with_conv_) {
    conv_.forward(ps, out, GradWrite::kAssign, x_);
  } else {
    ps.ops->avgpool2x_forward(out, x_, ps.N, H_, W_, ch_);
  }
}

void Downsample::backward(const Pass& ps, Span<InputGrad> din, const float* dout) {
  if (with_conv_) {
    conv_.backward(ps, din[0].data, din[0].write, dout, x_);
  } else {
    ps.ops->avgpool2x_backward(din[0].data, accumulates(din[0].write), dout, ps.N, H_, W_, ch_);
  }
}

void Upsample::plan(Arena& arena, int N, PlanMode mode) {
  if (!with_conv_) return;
  const int64_t n = static_cast<int64_t>(N) * 4 * H_ * W_ * ch_;
  up_ = arena.take(n);
  if (with_backward(mode)) dup_ = arena.shared(kBlockScratch0, n);
}

void Upsample::forward(const Pass& ps, float* out, Span<const float*> in) {
  if (!with_conv_) {
    ps.ops->upsample2x_forward(out, in[0], ps.N, H_, W_, ch_);
    return;
  }
  ps.ops->upsample2x_forward(up_, in[0], ps.N, H_, W_, ch_);
  conv_.forward(ps, out, GradWrite::kAssign, up_);
}

void Upsample::backward(const Pass& ps, Span<InputGrad> din, const float* dout) {
  DDPM_CHECK(din[0].write == GradWrite::kAssign, "an Upsample's input must have no other reader");
  if (!with_conv_) {
    ps.ops->upsample2x_backward(din[0].data, dout, ps.N, H_, W_, ch_);
    return;
  }
  conv_.backward(ps, dup_, GradWrite::kAssign, dout, up_);
  ps.ops->upsample2x_backward(din[0].data, dup_, ps.N, H_, W_, ch_);
}

void Concat::forward(const Pass& ps, float* out, Span<const float*> in) {
  ps.ops->concat_channels(out, in[0], in[1], static_cast<int64_t>(ps.N) * HW_, a_ch_, b_ch_);
}

void Concat::backward(const Pass& ps, Span<InputGrad> din, const float* dout) {
  DDPM_CHECK(din[0].write == GradWrite::kAssign && din[1].write == GradWrite::kAssign,
             "a Concat's inputs must have no later reader");
  ps.ops->split_channels(din[0].data, din[1].data, dout, static_cast<int64_t>(ps.N) * HW_, a_ch_, b_ch_);
}

}  // namespace ddpm
