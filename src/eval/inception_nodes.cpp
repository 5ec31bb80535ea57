#include "eval/inception_nodes.h"

#include <numeric>

#include "core/common.h"

namespace ddpm::eval {

void ForwardOnlyNode::backward(const Pass&, Span<InputGrad>, const float*) {
  DDPM_CHECK(false, "the evaluation network's nodes have no backward");
}

ConvReluNode::ConvReluNode(ParamLayout& layout, const std::string& name, const ConvSpec& geometry, int in_ch,
                           int out_ch, int H, int W)
    : H_(H), W_(W) {
  conv_.geometry = geometry;
  conv_.add(layout, name + ".conv", in_ch, out_ch, InitKind::kWeight);
}

TensorShape ConvReluNode::output_shape() const {
  ConvSpec s = conv_.geometry;
  s.H = H_, s.W = W_;
  return {s.out_h(), s.out_w(), s.O};
}

void ConvReluNode::forward(const Pass& ps, float* out, Span<const float*> in) {
  conv_.forward(ps, out, GradWrite::kAssign, in[0]);
  ps.ops->relu_forward(out, out, ps.N * output_shape().per_image());
}

void PoolNode::forward(const Pass& ps, float* out, Span<const float*> in) {
  PoolSpec s = spec_;
  s.N = ps.N;
  if (kind_ == PoolKind::kMax) ps.ops->maxpool_forward(out, in[0], s);
  else ps.ops->avgpool_forward(out, in[0], s);
}

int ConcatChannelsNode::out_channels() const { return std::accumulate(channels_.begin(), channels_.end(), 0); }

void ConcatChannelsNode::forward(const Pass& ps, float* out, Span<const float*> in) {
  const int64_t M = static_cast<int64_t>(ps.N) * HW_;
  const int total = out_channels();
  int first = 0;
  for (size_t i = 0; i < channels_.size(); ++i) {
    ps.ops->copy_channels(out, total, first, in[i], channels_[i], 0, channels_[i], M);
    first += channels_[i];
  }
}

void FirstChannelsNode::forward(const Pass& ps, float* out, Span<const float*> in) {
  ps.ops->copy_channels(out, count_, 0, in[0], C_, 0, count_, static_cast<int64_t>(ps.N) * HW_);
}

void GlobalAvgPoolNode::forward(const Pass& ps, float* out, Span<const float*> in) {
  ps.ops->global_avgpool_forward(out, in[0], ps.N, HW_, C_);
}

DenseNode::DenseNode(ParamLayout& layout, const std::string& name, int in_ch, int out_ch) {
  dense_.add(layout, name, in_ch, out_ch, LinearShape::kLinear, InitKind::kWeight);
}

void DenseNode::forward(const Pass& ps, float* out, Span<const float*> in) {
  dense_.forward(ps, out, GradWrite::kAssign, in[0], ps.N);
}

}  // namespace ddpm::eval
