// Pieces of the CPU convolution (conv2d.cpp): weights kept in a primitive's layout, and
// the Winograd path.
//
// Winograd F(4×4, 3×3) (oneDNN's jit_wino_4x3 kernels, fp32, blocked layouts only) ran
// 1.5–3× the direct kernels' speed on the 3×3 stride-1 convolutions of 32×32 and larger
// maps measured on an Intel Xeon (bench/conv_algorithms.sh), and slower on 16×16 ones; on
// an AMD EPYC (Zen 5) it won from 16×16 in every pass (bench/bench_conv). Which map
// sizes run it is CpuOps::winograd_sizes() (cpu_ops.h). Its rounding is about 5× the
// direct kernels' (1e-6 relative to a float64 reference, against 2e-7). Where it is used,
// the input (or dout) is reordered from NHWC into the blocked layout and the result back,
// around the primitive; the backward-weights pass has its own threshold.
#pragma once

#include <dnnl.hpp>

#include <cstdint>
#include <memory>

#include "core/cpu/cpu_ops.h"
#include "core/cpu/dnnl_compat.h"
#include "core/ops.h"

namespace ddpm {

// A copy of OIHW fp32 weights in a primitive's layout (and type), reordered only when the
// weights change: a new version or another pointer.
class LaidOutWeights {
 public:
  LaidOutWeights() = default;
  LaidOutWeights(CpuOps& ops, const dnnl::memory::desc& user, const dnnl::memory::desc& laid_out);
  // Brings the copy up to date with w.
  void refresh(const float* w, uint64_t version);
  // The copy: one memory object for the layer's life, so argument maps can hold it.
  const dnnl::memory& laid_out() const { return laid_out_; }

 private:
  CpuOps* ops_ = nullptr;
  dnnl::memory user_, laid_out_;
  dnnl::reorder reorder_;
  CpuOps::PrimitiveArgs args_;
  const float* ptr_ = nullptr;
  uint64_t version_ = ~uint64_t{0};
};

// Which passes of a convolution run Winograd: forward and backward data together, and
// backward weights.
struct WinogradPasses {
  bool data = false, weights = false;
};
WinogradPasses winograd_passes(const ConvSpec& s, const WinogradSizes& sizes);

class WinogradConv {
 public:
  // Null when the spec does not qualify, winograd is off (CpuOps::winograd()), or oneDNN
  // has no Winograd kernel for it on this CPU.
  static std::unique_ptr<WinogradConv> make(CpuOps& ops, const ConvSpec& s, const dnnl::memory::desc& user_w,
                                            const dnnl::memory::desc& bias, const dnnl_compat::ConvGeometry& g);
  bool weights_pass() const { return weights_pass_; }
  size_t scratchpad_bytes() const { return scratchpad_bytes_; }

  // out (NHWC) = conv(in) + b, or += with accumulate.
  void forward(float* out, bool accumulate, const float* in, const float* w, const float* b, uint64_t w_version);
  // Takes dout (NHWC) into the blocked layout for the backward passes below.
  void take_dout(const float* dout);
  // din (NHWC) = or += the input gradient of the dout last taken.
  void backward_data(float* din, bool accumulate, const float* w, uint64_t w_version);
  // dw (OIHW) and db += the weight and bias gradients of `in` and the dout last taken
  // (weights_pass() only).
  void backward_weights(float* dw, float* db, const float* in);

 private:
  WinogradConv(CpuOps& ops, const ConvSpec& s) : ops_(ops), spec_(s) {}
  void point_scratchpad();

  CpuOps& ops_;
  const ConvSpec spec_;
  bool weights_pass_ = false;
  size_t scratchpad_bytes_ = 64;
  int64_t dw_floats_ = 0;
  dnnl::convolution_forward fwd_;
  dnnl::convolution_backward_data bwd_data_;
  dnnl::convolution_backward_weights bwd_w_;
  LaidOutWeights w_fwd_, w_bwd_;
  // NHWC <-> blocked; the _acc reorders add into their destination.
  dnnl::reorder x_in_, y_out_, y_out_acc_, dy_in_, dx_out_, dx_out_acc_, dw_out_acc_;
  // Re-pointed per call.
  dnnl::memory nhwc_x_, nhwc_y_, nhwc_dy_, nhwc_dx_, blk_x_, blk_y_, blk_dy_, blk_dx_, blk_dw_, bias_, user_dw_,
      scratchpad_;
  CpuOps::PrimitiveArgs x_in_args_, y_out_args_, dy_in_args_, dx_out_args_, dw_out_args_, fwd_args_, bwd_data_args_,
      bwd_w_args_;
};

}  // namespace ddpm
