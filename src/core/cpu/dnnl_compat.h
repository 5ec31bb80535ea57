// Every oneDNN call that depends on the library's major version, in one place. ddpm
// builds against oneDNN 2.6 (Debian 12); the rest of src/core/cpu uses only what 2.x and
// 3.x share (memory, memory::desc, post_ops, reorder, dnnl_primitive_execute, DNNL_ARG_*).
//
// Porting to oneDNN 3.x changes only this file:
//  - The op descriptors (convolution_forward::desc, ..., matmul::desc) are gone: each
//    primitive_desc is built directly, engine first and attr last, e.g.
//      convolution_forward::primitive_desc(eng, prop, algo, src, w, bias, dst, strides,
//                                          pad_l, pad_r, attr)
//      convolution_backward_data::primitive_desc(eng, algo, src, w, dst, strides, pad_l,
//                                                pad_r, hint, attr)
//      matmul::primitive_desc(eng, src, w, dst, attr)
//  - primitive_attr::set_output_scales is gone: matmul_output_scale would call
//    attr.set_scales_mask(DNNL_ARG_WEIGHTS, 0), and MatmulArgs would pass alpha as a
//    one-float memory under DNNL_ARG_ATTR_SCALES | DNNL_ARG_WEIGHTS at execution.
//  - memory::desc's dims-and-strides constructor and get_size(), the reorder
//    primitive_desc and post_ops::append_sum keep their 2.x signatures.
#pragma once

#include <dnnl.hpp>

namespace ddpm {
namespace dnnl_compat {

using dnnl::memory;

static_assert(DNNL_VERSION_MAJOR == 2, "src/core/cpu/dnnl_compat.h is written for oneDNN 2.x (see its header)");

// Stride, and padding before / after, on each spatial axis of a convolution.
struct ConvGeometry {
  memory::dims strides, pad_before, pad_after;
};

inline dnnl::convolution_forward::primitive_desc conv_forward_pd(const dnnl::engine& eng, const memory::desc& src,
                                                                 const memory::desc& weights,
                                                                 const memory::desc& bias, const memory::desc& dst,
                                                                 const ConvGeometry& g,
                                                                 const dnnl::primitive_attr& attr,
                                                                 dnnl::algorithm algo = dnnl::algorithm::convolution_direct) {
  const dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_training, algo, src, weights, bias, dst, g.strides,
                                          g.pad_before, g.pad_after);
  return dnnl::convolution_forward::primitive_desc(d, attr, eng);
}

inline dnnl::convolution_backward_data::primitive_desc conv_backward_data_pd(
    const dnnl::engine& eng, const memory::desc& diff_src, const memory::desc& weights, const memory::desc& diff_dst,
    const ConvGeometry& g, const dnnl::primitive_attr& attr, const dnnl::convolution_forward::primitive_desc& hint,
    dnnl::algorithm algo = dnnl::algorithm::convolution_direct) {
  const dnnl::convolution_backward_data::desc d(algo, diff_src, weights, diff_dst, g.strides, g.pad_before,
                                                g.pad_after);
  return dnnl::convolution_backward_data::primitive_desc(d, attr, eng, hint);
}

inline dnnl::convolution_backward_weights::primitive_desc conv_backward_weights_pd(
    const dnnl::engine& eng, const memory::desc& src, const memory::desc& diff_weights,
    const memory::desc& diff_bias, const memory::desc& diff_dst, const ConvGeometry& g,
    const dnnl::primitive_attr& attr, const dnnl::convolution_forward::primitive_desc& hint,
    dnnl::algorithm algo = dnnl::algorithm::convolution_direct) {
  const dnnl::convolution_backward_weights::desc d(algo, src, diff_weights, diff_bias, diff_dst, g.strides,
                                                   g.pad_before, g.pad_after);
  return dnnl::convolution_backward_weights::primitive_desc(d, attr, eng, hint);
}

// dst = alpha * (src · weights): the scale applied to the accumulated product.
inline void matmul_output_scale(dnnl::primitive_attr* attr, float alpha) {
  if (alpha != 1.0f) attr->set_output_scales(0, {alpha});
}

inline dnnl::matmul::primitive_desc matmul_pd(const dnnl::engine& eng, const memory::desc& src,
                                              const memory::desc& weights, const memory::desc& dst,
                                              const dnnl::primitive_attr& attr) {
  return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weights, dst), attr, eng);
}

inline dnnl::reorder::primitive_desc reorder_pd(const dnnl::engine& eng, const memory::desc& src,
                                                const memory::desc& dst, const dnnl::primitive_attr& attr) {
  return dnnl::reorder::primitive_desc(eng, src, eng, dst, attr);
}

}  // namespace dnnl_compat
}  // namespace ddpm
