// Row-major matrix products (linear layers, 1x1 convolutions, attention) through oneDNN
// matmul primitives. Each shape's primitive is built on its first call and cached; all
// of them run on CpuOps's one user-managed scratchpad, and their memory objects and
// argument maps are kept and only re-pointed, so a call allocates nothing in ddpm
// (oneDNN's dnnl_sgemm, used before, allocated its packing buffers on every call).
// In bf16 the operands are first rounded into dense bf16 copies (scratch slots), so the
// primitive sees bf16 inputs and writes fp32.
#include <tuple>
#include <unordered_map>

#include "core/common.h"
#include "core/cpu/cpu_ops.h"
#include "core/cpu/dnnl_compat.h"

namespace ddpm {

using dnnl::memory;

bool CpuOps::GemmShape::operator<(const GemmShape& o) const {
  return std::tie(M, N, K, lda, ldb, ldc, trans_a, trans_b, accumulate, bf16, alpha) <
         std::tie(o.M, o.N, o.K, o.lda, o.ldb, o.ldc, o.trans_a, o.trans_b, o.accumulate, o.bf16, o.alpha);
}

CpuOps::Matmul::Matmul(const dnnl::engine& eng, const GemmShape& s) {
  // op(A) [M, K] and op(B) [K, N] described by strides: a transposed operand is the
  // same buffer read column by column.
  const memory::data_type in_type = s.bf16 ? memory::data_type::bf16 : memory::data_type::f32;
  const memory::desc a_md({s.M, s.K}, in_type, s.trans_a ? memory::dims{1, s.lda} : memory::dims{s.lda, 1});
  const memory::desc b_md({s.K, s.N}, in_type, s.trans_b ? memory::dims{1, s.ldb} : memory::dims{s.ldb, 1});
  const memory::desc c_md({s.M, s.N}, memory::data_type::f32, memory::dims{s.ldc, 1});
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl_compat::matmul_output_scale(&attr, s.alpha);
  if (s.accumulate) {  // C += product: a sum post-op, as sgemm's beta = 1
    dnnl::post_ops sum;
    sum.append_sum(1.0f);
    attr.set_post_ops(sum);
  }
  const dnnl::matmul::primitive_desc pd = dnnl_compat::matmul_pd(eng, a_md, b_md, c_md, attr);
  primitive = dnnl::matmul(pd);
  a = memory(a_md, eng, DNNL_MEMORY_NONE);
  b = memory(b_md, eng, DNNL_MEMORY_NONE);
  c = memory(c_md, eng, DNNL_MEMORY_NONE);
  scratchpad_bytes = pd.scratchpad_desc().get_size();
  scratchpad = memory(pd.scratchpad_desc(), eng, DNNL_MEMORY_NONE);
  args = primitive_args({{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}, {DNNL_ARG_SCRATCHPAD, scratchpad}});
}

void CpuOps::gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                  int64_t lda, const float* B, int64_t ldb, bool accumulate, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  const void* a_data = A;
  const void* b_data = B;
  if (bf16()) {  // dense bf16 copies: op(A) stored [M, K] or, transposed, [K, M]; B likewise
    const int64_t a_rows = trans_a ? K : M, a_cols = trans_a ? M : K;
    const int64_t b_rows = trans_b ? N : K, b_cols = trans_b ? K : N;
    uint16_t* a16 = static_cast<uint16_t*>(scratch(kSlotGemmA, sizeof(uint16_t) * a_rows * a_cols));
    uint16_t* b16 = static_cast<uint16_t*>(scratch(kSlotGemmB, sizeof(uint16_t) * b_rows * b_cols));
    to_bf16(a16, A, a_rows, a_cols, lda);
    to_bf16(b16, B, b_rows, b_cols, ldb);
    a_data = a16, b_data = b16, lda = a_cols, ldb = b_cols;
  }
  const GemmShape shape{M, N, K, lda, ldb, ldc, trans_a, trans_b, accumulate, bf16(), alpha};
  auto it = matmuls_.find(shape);
  if (it == matmuls_.end()) it = matmuls_.emplace(shape, std::make_unique<Matmul>(engine_, shape)).first;
  Matmul& mm = *it->second;
  mm.a.set_data_handle(const_cast<void*>(a_data));
  mm.b.set_data_handle(const_cast<void*>(b_data));
  mm.c.set_data_handle(C);
  mm.scratchpad.set_data_handle(scratch(kSlotWorkspace, mm.scratchpad_bytes));
  run_primitive(mm.primitive, mm.args);
}

}  // namespace ddpm
