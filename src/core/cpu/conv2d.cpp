// Convolution on the CPU through oneDNN. Primitives are built once per layer and
// shape; activations stay NHWC (oneDNN's brgconv/jit kernels run as fast on it as on
// blocked layouts here; the Winograd path of conv2d_winograd.h, where it is faster,
// reorders around its primitives), weights use `format_tag::any` and are reordered from the
// OIHW parameter buffer only when the weights change (a new version or pointer). The
// memory objects and argument maps are built with the primitives and only re-pointed
// per call, so a call allocates nothing in ddpm (oneDNN's own execution context does:
// CpuOps::run_primitive marks it as the library's). Descriptor construction, the part of
// oneDNN's API that changed in 3.x, is in dnnl_compat.h. In bf16 the primitives read
// bf16 copies of the input and dout (made per call) and of the weights (made with the
// reorder into the primitive's layout, once per weight version) and write fp32.
#include <dnnl.hpp>

#include <cstdio>
#include <cstring>
#include <unordered_map>

#include "core/common.h"
#include "core/cpu/conv2d_winograd.h"
#include "core/cpu/cpu_ops.h"
#include "core/cpu/dnnl_compat.h"

namespace ddpm {
namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

using Args = CpuOps::PrimitiveArgs;

class CpuConv2d final : public Conv2d {
 public:
  CpuConv2d(CpuOps& ops, const ConvSpec& s) : Conv2d(s), ops_(ops) {
    auto& eng = ops.engine();
    // What the products read: fp32, or bf16 copies (inputs, weights, douts); every
    // output (y, dx, dw, db) is fp32.
    const dt in_t = ops.bf16() ? dt::bf16 : dt::f32;
    const memory::dims src_dims{s.N, s.C, s.H, s.W}, dst_dims{s.N, s.O, s.out_h(), s.out_w()};
    const memory::dims w_dims{s.O, s.C, s.KH, s.KW}, b_dims{s.O};
    const dnnl_compat::ConvGeometry geom{{s.stride, s.stride}, {s.pad_top, s.pad_left}, {s.pad_bottom, s.pad_right}};
    const memory::desc x_md(src_dims, in_t, tag::nhwc), dx_md(src_dims, dt::f32, tag::nhwc);
    const memory::desc y_md(dst_dims, dt::f32, tag::nhwc), dy_md(dst_dims, in_t, tag::nhwc);
    user_w_md_ = memory::desc(w_dims, dt::f32, tag::oihw);
    const memory::desc bias_md(b_dims, dt::f32, tag::x);
    const memory::desc any_w(w_dims, in_t, tag::any), any_dw(w_dims, dt::f32, tag::any);

    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    fwd_pd_ = dnnl_compat::conv_forward_pd(eng, x_md, any_w, bias_md, y_md, geom, attr);
    bwd_data_pd_ = dnnl_compat::conv_backward_data_pd(eng, dx_md, any_w, dy_md, geom, attr, fwd_pd_);
    bwd_w_pd_ = dnnl_compat::conv_backward_weights_pd(eng, x_md, any_dw, bias_md, dy_md, geom, attr, fwd_pd_);
    if (ops.bf16()) warn_if_reference_kernel();
    fwd_ = dnnl::convolution_forward(fwd_pd_);
    // The same convolution adding into its destination (residual branches): a sum
    // post-op instead of a separate pass over the output.
    dnnl::post_ops sum;
    sum.append_sum(1.0f);
    dnnl::primitive_attr sum_attr = attr;
    sum_attr.set_post_ops(sum);
    fwd_acc_pd_ = dnnl_compat::conv_forward_pd(eng, x_md, any_w, bias_md, y_md, geom, sum_attr);
    fwd_acc_ = dnnl::convolution_forward(fwd_acc_pd_);
    DDPM_CHECK(fwd_acc_pd_.weights_desc() == fwd_pd_.weights_desc(), "conv: accumulating variant wants other weights");
    bwd_data_ = dnnl::convolution_backward_data(bwd_data_pd_);
    bwd_w_ = dnnl::convolution_backward_weights(bwd_w_pd_);

    // Weights: OIHW fp32 -> the primitives' layouts (and type), once per weight version.
    w_fwd_ = LaidOutWeights(ops, user_w_md_, fwd_pd_.weights_desc());
    separate_bwd_weights_ = bwd_data_pd_.weights_desc() != fwd_pd_.weights_desc();
    if (separate_bwd_weights_) w_bwd_ = LaidOutWeights(ops, user_w_md_, bwd_data_pd_.weights_desc());
    // dw (oneDNN layout) -> dw (OIHW), accumulating: a reorder with a sum post-op.
    dnnl::post_ops acc;
    acc.append_sum(1.0f);
    dnnl::primitive_attr acc_attr;
    acc_attr.set_post_ops(acc);
    reorder_dw_ = dnnl::reorder(dnnl_compat::reorder_pd(eng, bwd_w_pd_.diff_weights_desc(), user_w_md_, acc_attr));
    scratchpad_bytes_ = std::max({size_t{64}, fwd_pd_.scratchpad_desc().get_size(),
                                  fwd_acc_pd_.scratchpad_desc().get_size(), bwd_data_pd_.scratchpad_desc().get_size(),
                                  bwd_w_pd_.scratchpad_desc().get_size()});
    winograd_ = WinogradConv::make(ops, s, user_w_md_, bias_md, geom);

    // Memory objects without data: each call points them at its buffers.
    x_ = memory(x_md, eng, DNNL_MEMORY_NONE);
    dx_ = memory(dx_md, eng, DNNL_MEMORY_NONE);
    y_ = memory(y_md, eng, DNNL_MEMORY_NONE);
    dy_ = memory(dy_md, eng, DNNL_MEMORY_NONE);
    bias_ = memory(bias_md, eng, DNNL_MEMORY_NONE);
    user_w_ = memory(user_w_md_, eng, DNNL_MEMORY_NONE);
    dw_tmp_ = memory(bwd_w_pd_.diff_weights_desc(), eng, DNNL_MEMORY_NONE);
    // Kept: dnnl.hpp's descriptor queries build a vector on every call.
    dw_floats_ = static_cast<int64_t>(bwd_w_pd_.diff_weights_desc().get_size() / sizeof(float));
    scratchpad_ = memory(memory::desc({static_cast<memory::dim>(scratchpad_bytes_)}, dt::u8, tag::x), eng,
                         DNNL_MEMORY_NONE);
    fwd_args_ = CpuOps::primitive_args({{DNNL_ARG_SRC, x_}, {DNNL_ARG_WEIGHTS, w_fwd_.laid_out()}, {DNNL_ARG_BIAS, bias_},
                                        {DNNL_ARG_DST, y_}, {DNNL_ARG_SCRATCHPAD, scratchpad_}});
    bwd_data_args_ = CpuOps::primitive_args({{DNNL_ARG_DIFF_DST, dy_},
                                             {DNNL_ARG_WEIGHTS, (separate_bwd_weights_ ? w_bwd_ : w_fwd_).laid_out()},
                                             {DNNL_ARG_DIFF_SRC, dx_}, {DNNL_ARG_SCRATCHPAD, scratchpad_}});
    bwd_w_args_ = CpuOps::primitive_args({{DNNL_ARG_SRC, x_}, {DNNL_ARG_DIFF_DST, dy_},
                                          {DNNL_ARG_DIFF_WEIGHTS, dw_tmp_}, {DNNL_ARG_DIFF_BIAS, bias_},
                                          {DNNL_ARG_SCRATCHPAD, scratchpad_}});
    reorder_dw_args_ = CpuOps::primitive_args({{DNNL_ARG_FROM, dw_tmp_}, {DNNL_ARG_TO, user_w_}});
  }

  void forward(float* out, bool accumulate, const float* in, const float* w, const float* b,
               uint64_t w_version) override {
    if (winograd_) return winograd_->forward(out, accumulate, in, w, b, w_version);
    w_fwd_.refresh(w, w_version);
    point_input(in);
    bias_.set_data_handle(const_cast<float*>(b));
    y_.set_data_handle(out);
    point_scratchpad();
    ops_.run_primitive(accumulate ? fwd_acc_ : fwd_, fwd_args_);
  }

  void backward(float* din, bool accumulate, float* dw, float* db, const float* dout, const float* in, const float* w,
                uint64_t w_version) override {
    if (winograd_) {
      // dout into the blocked layout only for a pass that reads it there.
      if (din != nullptr || winograd_->weights_pass()) winograd_->take_dout(dout);
      if (din != nullptr) winograd_->backward_data(din, accumulate, w, w_version);
      if (winograd_->weights_pass()) return winograd_->backward_weights(dw, db, in);
      dy_.set_data_handle(const_cast<float*>(dout));  // Winograd runs fp32 only
      return backward_weights(dw, db, in);
    }
    const int64_t n_out = static_cast<int64_t>(spec_.N) * spec_.out_h() * spec_.out_w() * spec_.O;
    if (ops_.bf16()) {
      uint16_t* dout16 = ops_.scratch_as<uint16_t>(kSlotConvGrad, n_out);
      ops_.to_bf16(dout16, dout, 1, n_out, n_out);
      dy_.set_data_handle(dout16);
    } else {
      dy_.set_data_handle(const_cast<float*>(dout));
    }
    if (din != nullptr) {
      (separate_bwd_weights_ ? w_bwd_ : w_fwd_).refresh(w, w_version);
      const int64_t n_in = static_cast<int64_t>(spec_.N) * spec_.H * spec_.W * spec_.C;
      float* target = accumulate ? ops_.scratch_as<float>(kSlotConvOut, n_in) : din;
      dx_.set_data_handle(target);
      point_scratchpad();
      ops_.run_primitive(bwd_data_, bwd_data_args_);
      if (accumulate) ops_.add_inplace(din, target, n_in);
    }
    backward_weights(dw, db, in);
  }

 private:
  // dw and db into scratch (dw in oneDNN's layout), then added to the OIHW gradients;
  // dy_ points at dout (or its bf16 copy).
  void backward_weights(float* dw, float* db, const float* in) {
    const int64_t n_w = dw_floats_;
    float* dw_tmp = ops_.scratch_as<float>(kSlotConvOut, n_w + spec_.O);
    float* db_tmp = dw_tmp + n_w;
    point_input(in);
    dw_tmp_.set_data_handle(dw_tmp);
    bias_.set_data_handle(db_tmp);  // the primitive's diff_bias
    point_scratchpad();
    ops_.run_primitive(bwd_w_, bwd_w_args_);
    user_w_.set_data_handle(dw);
    ops_.run_primitive(reorder_dw_, reorder_dw_args_);
    for (int o = 0; o < spec_.O; ++o) db[o] += db_tmp[o];
  }

  // The primitives' src: the input itself, or its bf16 copy.
  void point_input(const float* in) {
    if (!ops_.bf16()) {
      x_.set_data_handle(const_cast<float*>(in));
      return;
    }
    const int64_t n_in = static_cast<int64_t>(spec_.N) * spec_.H * spec_.W * spec_.C;
    uint16_t* in16 = ops_.scratch_as<uint16_t>(kSlotConvIn, n_in);
    ops_.to_bf16(in16, in, 1, n_in, n_in);
    x_.set_data_handle(in16);
  }

  // oneDNN falls back to its reference kernels where it has no bf16 kernel for a shape
  // on this CPU: correct, but far slower than fp32. Said once per process.
  void warn_if_reference_kernel() const {
    static bool warned = false;
    for (const char* impl : {fwd_pd_.impl_info_str(), bwd_data_pd_.impl_info_str(), bwd_w_pd_.impl_info_str()}) {
      if (warned || std::strncmp(impl, "ref", 3) != 0) continue;
      warned = true;
      std::fprintf(stderr, "ddpm: oneDNN has no fast bf16 kernel for convolution %dx%d %d->%d on %dx%d (%s)\n",
                   spec_.KH, spec_.KW, spec_.C, spec_.O, spec_.H, spec_.W, impl);
    }
  }

  // The shared scratchpad may have moved (grown for another primitive) since the last call.
  void point_scratchpad() { scratchpad_.set_data_handle(ops_.scratch(kSlotWorkspace, scratchpad_bytes_)); }

  CpuOps& ops_;
  memory::desc user_w_md_;
  dnnl::convolution_forward::primitive_desc fwd_pd_, fwd_acc_pd_;
  dnnl::convolution_backward_data::primitive_desc bwd_data_pd_;
  dnnl::convolution_backward_weights::primitive_desc bwd_w_pd_;
  dnnl::convolution_forward fwd_, fwd_acc_;
  dnnl::convolution_backward_data bwd_data_;
  dnnl::convolution_backward_weights bwd_w_;
  LaidOutWeights w_fwd_, w_bwd_;
  bool separate_bwd_weights_ = false;  // backward data wants another layout than forward
  memory x_, dx_, y_, dy_, bias_, user_w_, dw_tmp_, scratchpad_;  // re-pointed per call
  Args fwd_args_, bwd_data_args_, bwd_w_args_, reorder_dw_args_;
  dnnl::reorder reorder_dw_;
  std::unique_ptr<WinogradConv> winograd_;  // where Winograd is faster (conv2d_winograd.h)
  size_t scratchpad_bytes_ = 0;
  int64_t dw_floats_ = 0;  // dw in oneDNN's layout
};

}  // namespace

std::unique_ptr<Conv2d> CpuOps::make_conv2d(const ConvSpec& spec) {
  DDPM_CHECK(spec.N > 0 && spec.C > 0 && spec.O > 0 && spec.out_h() > 0 && spec.out_w() > 0, "bad conv spec");
  return std::make_unique<CpuConv2d>(*this, spec);
}

}  // namespace ddpm
