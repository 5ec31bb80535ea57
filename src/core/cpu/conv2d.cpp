// Convolution on the CPU through oneDNN. Primitives are built once per layer and
// shape; activations stay NHWC (oneDNN's brgconv/jit kernels run as fast on it as on
// blocked layouts here), weights use `format_tag::any` and are reordered from the
// OIHW parameter buffer only when the weights change (a new version or pointer).
#include <dnnl.hpp>

#include "core/common.h"
#include "core/cpu/cpu_ops.h"

namespace ddpm {
namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

// Scratch slots of CpuOps used here.
constexpr int kScratchpadSlot = 0;  // oneDNN user-managed scratchpad
constexpr int kDinSlot = 1;         // din before it is accumulated
constexpr int kDwSlot = 2;          // dw in oneDNN's layout before the accumulating reorder

class CpuConv2d final : public Conv2d {
 public:
  CpuConv2d(CpuOps& ops, const ConvSpec& s) : Conv2d(s), ops_(ops) {
    auto& eng = ops.engine();
    const memory::dims src_dims{s.N, s.C, s.H, s.W}, dst_dims{s.N, s.O, s.out_h(), s.out_w()};
    const memory::dims w_dims{s.O, s.C, s.K, s.K}, b_dims{s.O};
    const memory::dims strides{s.stride, s.stride}, pad_l{s.pad_top, s.pad_left}, pad_r{s.pad_bottom, s.pad_right};
    src_md_ = memory::desc(src_dims, dt::f32, tag::nhwc);
    dst_md_ = memory::desc(dst_dims, dt::f32, tag::nhwc);
    user_w_md_ = memory::desc(w_dims, dt::f32, tag::oihw);
    bias_md_ = memory::desc(b_dims, dt::f32, tag::x);
    const memory::desc any_w(w_dims, dt::f32, tag::any);

    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    const dnnl::convolution_forward::desc fwd_desc(dnnl::prop_kind::forward_training,
                                                   dnnl::algorithm::convolution_direct, src_md_, any_w, bias_md_,
                                                   dst_md_, strides, pad_l, pad_r);
    fwd_pd_ = dnnl::convolution_forward::primitive_desc(fwd_desc, attr, eng);
    bwd_data_pd_ = dnnl::convolution_backward_data::primitive_desc(
        dnnl::convolution_backward_data::desc(dnnl::algorithm::convolution_direct, src_md_, any_w, dst_md_, strides,
                                              pad_l, pad_r),
        attr, eng, fwd_pd_);
    bwd_w_pd_ = dnnl::convolution_backward_weights::primitive_desc(
        dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, src_md_, any_w, bias_md_,
                                                 dst_md_, strides, pad_l, pad_r),
        attr, eng, fwd_pd_);
    fwd_ = dnnl::convolution_forward(fwd_pd_);
    // The same convolution adding into its destination (residual branches): a sum
    // post-op instead of a separate pass over the output.
    dnnl::post_ops sum;
    sum.append_sum(1.0f);
    dnnl::primitive_attr sum_attr = attr;
    sum_attr.set_post_ops(sum);
    fwd_acc_pd_ = dnnl::convolution_forward::primitive_desc(fwd_desc, sum_attr, eng);
    fwd_acc_ = dnnl::convolution_forward(fwd_acc_pd_);
    DDPM_CHECK(fwd_acc_pd_.weights_desc() == fwd_pd_.weights_desc(), "conv: accumulating variant wants other weights");
    bwd_data_ = dnnl::convolution_backward_data(bwd_data_pd_);
    bwd_w_ = dnnl::convolution_backward_weights(bwd_w_pd_);

    w_fwd_ = memory(fwd_pd_.weights_desc(), eng);
    reorder_w_fwd_ = dnnl::reorder(memory(user_w_md_, eng, DNNL_MEMORY_NONE), w_fwd_);
    if (bwd_data_pd_.weights_desc() == fwd_pd_.weights_desc()) {
      w_bwd_ = w_fwd_;
    } else {
      w_bwd_ = memory(bwd_data_pd_.weights_desc(), eng);
      reorder_w_bwd_ = dnnl::reorder(memory(user_w_md_, eng, DNNL_MEMORY_NONE), w_bwd_);
    }
    // dw (oneDNN layout) -> dw (OIHW), accumulating: a reorder with a sum post-op.
    dnnl::post_ops acc;
    acc.append_sum(1.0f);
    dnnl::primitive_attr acc_attr;
    acc_attr.set_post_ops(acc);
    reorder_dw_ = dnnl::reorder(
        dnnl::reorder::primitive_desc(eng, bwd_w_pd_.diff_weights_desc(), eng, user_w_md_, acc_attr));
    scratch_floats_ = static_cast<int64_t>(std::max({fwd_pd_.scratchpad_desc().get_size(),
                                                     fwd_acc_pd_.scratchpad_desc().get_size(),
                                                     bwd_data_pd_.scratchpad_desc().get_size(),
                                                     bwd_w_pd_.scratchpad_desc().get_size()}) /
                                           sizeof(float)) + 16;
  }

  void forward(float* out, bool accumulate, const float* in, const float* w, const float* b,
               uint64_t w_version) override {
    refresh(w, w_version, &fwd_key_, reorder_w_fwd_, w_fwd_);
    auto& eng = ops_.engine();
    (accumulate ? fwd_acc_ : fwd_).execute(ops_.stream(), {{DNNL_ARG_SRC, memory(src_md_, eng, const_cast<float*>(in))},
                                 {DNNL_ARG_WEIGHTS, w_fwd_},
                                 {DNNL_ARG_BIAS, memory(bias_md_, eng, const_cast<float*>(b))},
                                 {DNNL_ARG_DST, memory(dst_md_, eng, out)},
                                 {DNNL_ARG_SCRATCHPAD, scratchpad(accumulate ? fwd_acc_pd_ : fwd_pd_)}});
    ops_.stream().wait();
  }

  void backward(float* din, bool accumulate, float* dw, float* db, const float* dout, const float* in, const float* w,
                uint64_t w_version) override {
    auto& eng = ops_.engine();
    const memory dout_m(dst_md_, eng, const_cast<float*>(dout));
    if (din != nullptr) {
      if (reorder_w_bwd_) refresh(w, w_version, &bwd_key_, reorder_w_bwd_, w_bwd_);
      else refresh(w, w_version, &fwd_key_, reorder_w_fwd_, w_fwd_);
      const int64_t n_in = static_cast<int64_t>(spec_.N) * spec_.H * spec_.W * spec_.C;
      float* target = accumulate ? ops_.scratch(kDinSlot, n_in) : din;
      bwd_data_.execute(ops_.stream(), {{DNNL_ARG_DIFF_DST, dout_m},
                                        {DNNL_ARG_WEIGHTS, w_bwd_},
                                        {DNNL_ARG_DIFF_SRC, memory(src_md_, eng, target)},
                                        {DNNL_ARG_SCRATCHPAD, scratchpad(bwd_data_pd_)}});
      ops_.stream().wait();
      if (accumulate) ops_.add_inplace(din, target, n_in);
    }
    const int64_t n_w = static_cast<int64_t>(bwd_w_pd_.diff_weights_desc().get_size() / sizeof(float));
    const memory dw_tmp(bwd_w_pd_.diff_weights_desc(), eng, ops_.scratch(kDwSlot, n_w + spec_.O));
    float* db_tmp = static_cast<float*>(dw_tmp.get_data_handle()) + n_w;
    bwd_w_.execute(ops_.stream(), {{DNNL_ARG_SRC, memory(src_md_, eng, const_cast<float*>(in))},
                                   {DNNL_ARG_DIFF_DST, dout_m},
                                   {DNNL_ARG_DIFF_WEIGHTS, dw_tmp},
                                   {DNNL_ARG_DIFF_BIAS, memory(bias_md_, eng, db_tmp)},
                                   {DNNL_ARG_SCRATCHPAD, scratchpad(bwd_w_pd_)}});
    memory src = dw_tmp, dst(user_w_md_, eng, dw);
    reorder_dw_.execute(ops_.stream(), src, dst);
    ops_.stream().wait();
    for (int o = 0; o < spec_.O; ++o) db[o] += db_tmp[o];
  }

 private:
  struct WeightsKey {
    const float* ptr = nullptr;
    uint64_t version = ~uint64_t{0};
  };

  // Reorders OIHW weights into the primitive's layout unless they are already there.
  void refresh(const float* w, uint64_t version, WeightsKey* key, dnnl::reorder& reorder, memory& dst) {
    if (key->ptr == w && key->version == version) return;
    memory src(user_w_md_, ops_.engine(), const_cast<float*>(w));
    reorder.execute(ops_.stream(), src, dst);
    ops_.stream().wait();
    key->ptr = w;
    key->version = version;
  }

  template <typename PD>
  memory scratchpad(const PD& pd) {
    return memory(pd.scratchpad_desc(), ops_.engine(), ops_.scratch(kScratchpadSlot, scratch_floats_));
  }

  CpuOps& ops_;
  memory::desc src_md_, dst_md_, user_w_md_, bias_md_;
  dnnl::convolution_forward::primitive_desc fwd_pd_, fwd_acc_pd_;
  dnnl::convolution_backward_data::primitive_desc bwd_data_pd_;
  dnnl::convolution_backward_weights::primitive_desc bwd_w_pd_;
  dnnl::convolution_forward fwd_, fwd_acc_;
  dnnl::convolution_backward_data bwd_data_;
  dnnl::convolution_backward_weights bwd_w_;
  memory w_fwd_, w_bwd_;
  dnnl::reorder reorder_w_fwd_, reorder_w_bwd_, reorder_dw_;
  WeightsKey fwd_key_, bwd_key_;
  int64_t scratch_floats_ = 0;
};

}  // namespace

std::unique_ptr<Conv2d> CpuOps::make_conv2d(const ConvSpec& spec) {
  DDPM_CHECK(spec.N > 0 && spec.C > 0 && spec.O > 0 && spec.out_h() > 0 && spec.out_w() > 0, "bad conv spec");
  return std::make_unique<CpuConv2d>(*this, spec);
}

}  // namespace ddpm
