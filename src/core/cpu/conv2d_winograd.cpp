#include "core/cpu/conv2d_winograd.h"

#include <algorithm>

#include "core/common.h"
#include "core/scratch_slots.h"

namespace ddpm {
namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

dnnl::reorder make_reorder(const dnnl::engine& eng, const memory::desc& from, const memory::desc& to, bool accumulate) {
  dnnl::primitive_attr attr;
  if (accumulate) {
    dnnl::post_ops sum;
    sum.append_sum(1.0f);
    attr.set_post_ops(sum);
  }
  return dnnl::reorder(dnnl_compat::reorder_pd(eng, from, to, attr));
}

memory unbound(const memory::desc& md, const dnnl::engine& eng) { return memory(md, eng, DNNL_MEMORY_NONE); }

}  // namespace

LaidOutWeights::LaidOutWeights(CpuOps& ops, const memory::desc& user, const memory::desc& laid_out)
    : ops_(&ops), user_(unbound(user, ops.engine())), laid_out_(laid_out, ops.engine()),
      reorder_(user_, laid_out_), args_(CpuOps::primitive_args({{DNNL_ARG_FROM, user_}, {DNNL_ARG_TO, laid_out_}})) {}

void LaidOutWeights::refresh(const float* w, uint64_t version) {
  if (ptr_ == w && version_ == version) return;
  user_.set_data_handle(const_cast<float*>(w));
  ops_->run_primitive(reorder_, args_);
  ptr_ = w;
  version_ = version;
}

WinogradSizes default_winograd_sizes() {
  if (cpu_is_amd()) return {16 * 16, 16 * 16};
  return WinogradSizes{};  // Intel's, and any other CPU's
}

WinogradPasses winograd_passes(const ConvSpec& s, const WinogradSizes& sizes) {
  const bool shape = s.KH == 3 && s.KW == 3 && s.stride == 1 && s.pad_top == 1 && s.pad_left == 1 &&
                     s.pad_bottom == 1 && s.pad_right == 1 && s.C % 16 == 0 && s.O % 16 == 0;
  const int64_t pixels = int64_t{s.H} * s.W;
  // The weights pass runs Winograd only with the data passes (they share the blocked copies).
  const bool data = shape && pixels >= sizes.data_pixels;
  return {data, data && pixels >= sizes.weights_pixels};
}

std::unique_ptr<WinogradConv> WinogradConv::make(CpuOps& ops, const ConvSpec& s, const memory::desc& user_w,
                                                 const memory::desc& bias, const dnnl_compat::ConvGeometry& g) {
  const WinogradPasses passes = winograd_passes(s, ops.winograd_sizes());
  if (!ops.winograd() || ops.bf16() || !passes.data) return nullptr;
  const auto& eng = ops.engine();
  const auto wino = dnnl::algorithm::convolution_winograd;
  const memory::dims src_dims{s.N, s.C, s.H, s.W}, dst_dims{s.N, s.O, s.out_h(), s.out_w()};
  const memory::dims w_dims{s.O, s.C, s.KH, s.KW};
  const memory::desc any_x(src_dims, dt::f32, tag::any), any_y(dst_dims, dt::f32, tag::any);
  const memory::desc any_w(w_dims, dt::f32, tag::any);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  std::unique_ptr<WinogradConv> c(new WinogradConv(ops, s));
  dnnl::convolution_forward::primitive_desc fwd;
  dnnl::convolution_backward_data::primitive_desc bwd_data;
  dnnl::convolution_backward_weights::primitive_desc bwd_w;
  try {
    fwd = dnnl_compat::conv_forward_pd(eng, any_x, any_w, bias, any_y, g, attr, wino);
    bwd_data = dnnl_compat::conv_backward_data_pd(eng, any_x, any_w, any_y, g, attr, fwd, wino);
    if (passes.weights) bwd_w = dnnl_compat::conv_backward_weights_pd(eng, any_x, any_w, bias, any_y, g, attr, fwd, wino);
  } catch (const dnnl::error&) {
    return nullptr;  // no Winograd kernel for this shape or CPU: the direct kernels do it all
  }
  // One blocked layout for every pass, so the copies serve them all.
  if (bwd_data.diff_src_desc() != fwd.src_desc() || bwd_data.diff_dst_desc() != fwd.dst_desc()) return nullptr;
  c->weights_pass_ = passes.weights && bwd_w.src_desc() == fwd.src_desc() && bwd_w.diff_dst_desc() == fwd.dst_desc();

  const memory::desc nhwc_x(src_dims, dt::f32, tag::nhwc), nhwc_y(dst_dims, dt::f32, tag::nhwc);
  c->fwd_ = dnnl::convolution_forward(fwd);
  c->bwd_data_ = dnnl::convolution_backward_data(bwd_data);
  c->w_fwd_ = LaidOutWeights(ops, user_w, fwd.weights_desc());
  c->w_bwd_ = LaidOutWeights(ops, user_w, bwd_data.weights_desc());
  c->x_in_ = make_reorder(eng, nhwc_x, fwd.src_desc(), false);
  c->y_out_ = make_reorder(eng, fwd.dst_desc(), nhwc_y, false);
  c->y_out_acc_ = make_reorder(eng, fwd.dst_desc(), nhwc_y, true);
  c->dy_in_ = make_reorder(eng, nhwc_y, fwd.dst_desc(), false);
  c->dx_out_ = make_reorder(eng, fwd.src_desc(), nhwc_x, false);
  c->dx_out_acc_ = make_reorder(eng, fwd.src_desc(), nhwc_x, true);
  c->nhwc_x_ = unbound(nhwc_x, eng), c->nhwc_y_ = unbound(nhwc_y, eng);
  c->nhwc_dy_ = unbound(nhwc_y, eng), c->nhwc_dx_ = unbound(nhwc_x, eng);
  c->blk_x_ = unbound(fwd.src_desc(), eng), c->blk_y_ = unbound(fwd.dst_desc(), eng);
  c->blk_dy_ = unbound(fwd.dst_desc(), eng), c->blk_dx_ = unbound(fwd.src_desc(), eng);
  c->bias_ = unbound(bias, eng);
  c->scratchpad_bytes_ = std::max({size_t{64}, fwd.scratchpad_desc().get_size(), bwd_data.scratchpad_desc().get_size()});
  if (c->weights_pass_) {
    c->bwd_w_ = dnnl::convolution_backward_weights(bwd_w);
    c->dw_out_acc_ = make_reorder(eng, bwd_w.diff_weights_desc(), user_w, true);
    c->blk_dw_ = unbound(bwd_w.diff_weights_desc(), eng);
    c->user_dw_ = unbound(user_w, eng);
    c->dw_floats_ = static_cast<int64_t>(bwd_w.diff_weights_desc().get_size() / sizeof(float));
    c->scratchpad_bytes_ = std::max(c->scratchpad_bytes_, bwd_w.scratchpad_desc().get_size());
  }
  c->scratchpad_ = unbound(memory::desc({static_cast<memory::dim>(c->scratchpad_bytes_)}, dt::u8, tag::x), eng);
  using P = CpuOps;
  c->x_in_args_ = P::primitive_args({{DNNL_ARG_FROM, c->nhwc_x_}, {DNNL_ARG_TO, c->blk_x_}});
  c->y_out_args_ = P::primitive_args({{DNNL_ARG_FROM, c->blk_y_}, {DNNL_ARG_TO, c->nhwc_y_}});
  c->dy_in_args_ = P::primitive_args({{DNNL_ARG_FROM, c->nhwc_dy_}, {DNNL_ARG_TO, c->blk_dy_}});
  c->dx_out_args_ = P::primitive_args({{DNNL_ARG_FROM, c->blk_dx_}, {DNNL_ARG_TO, c->nhwc_dx_}});
  c->fwd_args_ = P::primitive_args({{DNNL_ARG_SRC, c->blk_x_}, {DNNL_ARG_WEIGHTS, c->w_fwd_.laid_out()},
                                    {DNNL_ARG_BIAS, c->bias_}, {DNNL_ARG_DST, c->blk_y_},
                                    {DNNL_ARG_SCRATCHPAD, c->scratchpad_}});
  c->bwd_data_args_ = P::primitive_args({{DNNL_ARG_DIFF_DST, c->blk_dy_}, {DNNL_ARG_WEIGHTS, c->w_bwd_.laid_out()},
                                         {DNNL_ARG_DIFF_SRC, c->blk_dx_}, {DNNL_ARG_SCRATCHPAD, c->scratchpad_}});
  if (c->weights_pass_) {
    c->dw_out_args_ = P::primitive_args({{DNNL_ARG_FROM, c->blk_dw_}, {DNNL_ARG_TO, c->user_dw_}});
    c->bwd_w_args_ = P::primitive_args({{DNNL_ARG_SRC, c->blk_x_}, {DNNL_ARG_DIFF_DST, c->blk_dy_},
                                        {DNNL_ARG_DIFF_WEIGHTS, c->blk_dw_}, {DNNL_ARG_DIFF_BIAS, c->bias_},
                                        {DNNL_ARG_SCRATCHPAD, c->scratchpad_}});
  }
  return c;
}

void WinogradConv::point_scratchpad() {
  scratchpad_.set_data_handle(ops_.scratch(kSlotWorkspace, scratchpad_bytes_));
}

void WinogradConv::forward(float* out, bool accumulate, const float* in, const float* w, const float* b,
                           uint64_t w_version) {
  const int64_t n_in = int64_t{spec_.N} * spec_.H * spec_.W * spec_.C;
  const int64_t n_out = int64_t{spec_.N} * spec_.out_h() * spec_.out_w() * spec_.O;
  w_fwd_.refresh(w, w_version);
  nhwc_x_.set_data_handle(const_cast<float*>(in));
  blk_x_.set_data_handle(ops_.scratch_as<float>(kSlotConvIn, n_in));
  ops_.run_primitive(x_in_, x_in_args_);
  blk_y_.set_data_handle(ops_.scratch_as<float>(kSlotConvOut, n_out));
  bias_.set_data_handle(const_cast<float*>(b));
  point_scratchpad();
  ops_.run_primitive(fwd_, fwd_args_);
  nhwc_y_.set_data_handle(out);
  ops_.run_primitive(accumulate ? y_out_acc_ : y_out_, y_out_args_);
}

void WinogradConv::take_dout(const float* dout) {
  const int64_t n_out = int64_t{spec_.N} * spec_.out_h() * spec_.out_w() * spec_.O;
  nhwc_dy_.set_data_handle(const_cast<float*>(dout));
  blk_dy_.set_data_handle(ops_.scratch_as<float>(kSlotConvGrad, n_out));
  ops_.run_primitive(dy_in_, dy_in_args_);
}

void WinogradConv::backward_data(float* din, bool accumulate, const float* w, uint64_t w_version) {
  const int64_t n_in = int64_t{spec_.N} * spec_.H * spec_.W * spec_.C;
  w_bwd_.refresh(w, w_version);
  blk_dx_.set_data_handle(ops_.scratch_as<float>(kSlotConvOut, n_in));
  point_scratchpad();
  ops_.run_primitive(bwd_data_, bwd_data_args_);
  nhwc_dx_.set_data_handle(din);
  ops_.run_primitive(accumulate ? dx_out_acc_ : dx_out_, dx_out_args_);
}

void WinogradConv::backward_weights(float* dw, float* db, const float* in) {
  DDPM_CHECK(weights_pass_, "WinogradConv: no backward-weights pass for this shape");
  const int64_t n_in = int64_t{spec_.N} * spec_.H * spec_.W * spec_.C;
  nhwc_x_.set_data_handle(const_cast<float*>(in));
  blk_x_.set_data_handle(ops_.scratch_as<float>(kSlotConvIn, n_in));
  ops_.run_primitive(x_in_, x_in_args_);
  float* dw_tmp = ops_.scratch_as<float>(kSlotConvOut, dw_floats_ + spec_.O);
  float* db_tmp = dw_tmp + dw_floats_;
  blk_dw_.set_data_handle(dw_tmp);
  bias_.set_data_handle(db_tmp);
  point_scratchpad();
  ops_.run_primitive(bwd_w_, bwd_w_args_);
  user_dw_.set_data_handle(dw);
  ops_.run_primitive(dw_out_acc_, dw_out_args_);
  for (int o = 0; o < spec_.O; ++o) db[o] += db_tmp[o];
}

}  // namespace ddpm
