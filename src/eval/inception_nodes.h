// The nodes the evaluation's Inception network (inception.cpp) is built from: forward
// only, NHWC, each reading named tensors of a Graph (core/graph.h) and producing one.
// A convolution unit is pytorch-fid's BasicConv2d with its BatchNorm folded into the
// convolution's weights and bias (tools/convert_inception.py), then a ReLU.
#pragma once

#include <string>
#include <vector>

#include "core/graph.h"
#include "core/layers.h"

namespace ddpm::eval {

// A node without a backward: a graph with several outputs is never planned for one.
class ForwardOnlyNode : public Node {
 public:
  void backward(const Pass& ps, Span<InputGrad> din, const float* dout) final;
};

// out [N, Ho, Wo, O] = relu(conv(x [N, H, W, C]) + b), weights <name>.conv.weight
// [O, C, KH, KW] and <name>.conv.bias [O]; geometry gives the kernel, stride and padding.
class ConvReluNode : public ForwardOnlyNode {
 public:
  ConvReluNode(ParamLayout& layout, const std::string& name, const ConvSpec& geometry, int in_ch, int out_ch, int H,
               int W);
  void build(Ops& ops, int N) override { conv_.build(ops, N, H_, W_); }
  void forward(const Pass& ps, float* out, Span<const float*> in) override;
  int64_t macs() const override { return conv_.macs(H_, W_); }
  int64_t first_param() const override { return conv_.w; }
  TensorShape output_shape() const;

 private:
  int H_, W_;
  ConvLayer conv_;
};

enum class PoolKind { kMax, kAverage };

// out [N, Ho, Wo, C] = max or mean of each window's in-bounds taps of x [N, H, W, C]
// (PoolSpec's K, stride and pad; N is the batch of each pass).
class PoolNode : public ForwardOnlyNode {
 public:
  PoolNode(PoolKind kind, const PoolSpec& spec) : kind_(kind), spec_(spec) {}
  void forward(const Pass& ps, float* out, Span<const float*> in) override;
  TensorShape output_shape() const { return {spec_.out_h(), spec_.out_w(), spec_.C}; }

 private:
  PoolKind kind_;
  PoolSpec spec_;
};

// out [N, H, W, C0 + C1 + ...] = [x0 | x1 | ...] along channels: the branches of a block.
class ConcatChannelsNode : public ForwardOnlyNode {
 public:
  ConcatChannelsNode(std::vector<int> channels, int H, int W) : channels_(std::move(channels)), HW_(H * W) {}
  void forward(const Pass& ps, float* out, Span<const float*> in) override;
  int out_channels() const;

 private:
  std::vector<int> channels_;
  int HW_;
};

// out [N, H, W, count] = channels [0, count) of x [N, H, W, C] (sFID's features).
class FirstChannelsNode : public ForwardOnlyNode {
 public:
  FirstChannelsNode(int count, int C, int H, int W) : count_(count), C_(C), HW_(H * W) {}
  void forward(const Pass& ps, float* out, Span<const float*> in) override;

 private:
  int count_, C_, HW_;
};

// out [N, C] = mean over H, W of x [N, H, W, C] (pool_3).
class GlobalAvgPoolNode : public ForwardOnlyNode {
 public:
  GlobalAvgPoolNode(int C, int H, int W) : C_(C), HW_(H * W) {}
  void forward(const Pass& ps, float* out, Span<const float*> in) override;

 private:
  int C_, HW_;
};

// out [N, O] = x [N, C] · w^T + b, weights <name>.weight [O, C] and <name>.bias [O] (fc).
class DenseNode : public ForwardOnlyNode {
 public:
  DenseNode(ParamLayout& layout, const std::string& name, int in_ch, int out_ch);
  void forward(const Pass& ps, float* out, Span<const float*> in) override;
  int64_t macs() const override { return dense_.macs(1); }
  int64_t first_param() const override { return dense_.w; }

 private:
  LinearLayer dense_;
};

}  // namespace ddpm::eval
