// The CPU backend: oneDNN for convolutions and matrix products, OpenMP loops for the
// rest. Each layer's kernels live in their own file (groupnorm.cpp, attention.cpp, ...)
// as CpuOps members; the CUDA backend mirrors the same files in src/core/cuda.
//
// Memory: primitives are built once per shape (convolutions by UNet::prepare, matrix
// products on first use, cached by shape), every primitive runs on the one user-managed
// scratchpad, and temporaries live in the scratch slots of core/scratch_slots.h (shared
// with the CUDA backend), which grow to the largest request and never shrink: after the
// first step src/core/cpu allocates nothing.
//
// Precision: fp32, or bf16 (autocast semantics, core/precision.h): convolutions take
// bf16 copies of their input and dout (made per call in scratch slots) and of their
// weights (made once per weight version, in the primitive's blocked layout), matrix
// products bf16 copies of both operands; all of them accumulate in fp32 and write fp32
// (weight and bias gradients too), so everything around them is unchanged.
#pragma once

#include <dnnl.hpp>

#include <map>
#include <memory>
#include <unordered_map>
#include <vector>

#include "core/ops.h"
#include "core/scratch_slots.h"

namespace ddpm {

// What bf16 runs on here, as oneDNN dispatches: AMX tiles, AVX512-BF16 dot products
// (whose peak is twice fp32 FMAs' on AMD Zen 5 and equal to it on the Intel Xeon
// measured, bench/bench_isa_peak and docs/performance.md), or nothing.
enum class CpuBf16Support { kNone, kAvx512Bf16, kAmx };
CpuBf16Support cpu_bf16_support();  // bf16.cpp
const char* cpu_isa_name();         // oneDNN's effective ISA, e.g. "avx512_core_amx"
// AMD or not: where the CPUs measured differ by vendor beyond their ISA (Winograd's map
// sizes, bf16 against fp32 without AMX).
bool cpu_is_amd();  // bf16.cpp

// The smallest maps (H·W pixels) on which a 3×3 stride-1 fp32 convolution runs oneDNN's
// Winograd kernels (conv2d_winograd.h): forward with backward data, and backward weights.
struct WinogradSizes {
  int64_t data_pixels = 32 * 32, weights_pixels = 64 * 64;
};
// Where Winograd beat the direct kernels on the CPUs measured (bench/bench_conv, one row
// per pass and map size; docs/performance.md): on Intel Xeon (AVX-512, no AMX) from 32×32
// (weights from 64×64), on AMD EPYC (Zen 5) from 16×16 for every pass. By CPU vendor, so
// that every process on a machine makes the same choice (a resumed run stays bitwise).
WinogradSizes default_winograd_sizes();  // conv2d_winograd.cpp

class CpuOps final : public Ops {
 public:
  // bf16 on a CPU without bf16 kernels: one line on stderr, and fp32.
  CpuOps(int threads, Precision precision, bool winograd = true);
  const char* name() const override { return "cpu"; }
  Precision precision() const override { return precision_; }
  bool bf16() const { return precision_ == Precision::kBf16; }
  // Winograd for the 3×3 convolutions where it is faster (conv2d_winograd.h).
  bool winograd() const { return winograd_; }
  const WinogradSizes& winograd_sizes() const { return winograd_sizes_; }
  // For benchmarks and tests: convolutions made after this call use these sizes.
  void set_winograd_sizes(const WinogradSizes& sizes) { winograd_sizes_ = sizes; }

  float* alloc(int64_t n) override;
  void release(float* p) override;
  void zero(float* p, int64_t n) override;
  void copy(float* dst, const float* src, int64_t n) override;
  void upload(float* dst, const float* host, int64_t n) override { copy(dst, host, n); }
  void download(float* host, const float* src, int64_t n) override { copy(host, src, n); }
  void synchronize() override {}
  bool host_memory() const override { return true; }

  std::unique_ptr<Conv2d> make_conv2d(const ConvSpec& spec) override;
  void linear_forward(float* out, bool accumulate, const float* in, const float* w, const float* b, int64_t M, int C,
                      int O) override;
  void linear_backward(float* din, bool accumulate, float* dw, float* db, const float* dout, const float* in,
                       const float* w, int64_t M, int C, int O) override;
  void groupnorm_forward(float* out, float* mean, float* rstd, const float* in, const float* w, const float* b,
                         const GroupNormSpec& spec) override;
  void groupnorm_backward(float* din, bool accumulate, float* dw, float* db, const float* dout, const float* in,
                          const float* mean, const float* rstd, const float* w, const float* b,
                          const GroupNormSpec& spec) override;
  void swish_forward(float* out, const float* in, int64_t n) override;
  void swish_backward(float* din, const float* dout, const float* in, int64_t n) override;
  void dropout_apply(float* x, float p, const DropoutKey& key, int N, int64_t per_example) override;
  void add_channel_bias(float* x, const float* bias, int N, int HW, int C) override;
  void sum_over_hw(float* dbias, const float* dx, int N, int HW, int C) override;
  void upsample2x_forward(float* out, const float* in, int N, int H, int W, int C) override;
  void upsample2x_backward(float* din, const float* dout, int N, int H, int W, int C) override;
  void avgpool2x_forward(float* out, const float* in, int N, int H, int W, int C) override;
  void avgpool2x_backward(float* din, bool accumulate, const float* dout, int N, int H, int W, int C) override;
  void concat_channels(float* out, const float* a, const float* b, int64_t M, int Ca, int Cb) override;
  void split_channels(float* da, float* db, const float* dout, int64_t M, int Ca, int Cb) override;
  void add_inplace(float* dst, const float* src, int64_t n) override;
  void copy_channels(float* out, int out_ch, int out_first, const float* in, int in_ch, int in_first, int count,
                     int64_t M) override;
  void relu_forward(float* out, const float* in, int64_t n) override;
  void maxpool_forward(float* out, const float* in, const PoolSpec& spec) override;
  void avgpool_forward(float* out, const float* in, const PoolSpec& spec) override;
  void global_avgpool_forward(float* out, const float* in, int N, int HW, int C) override;
  void attention_forward(float* a, float* p, const float* q, const float* k, const float* v, int N, int L,
                         int C) override;
  void attention_backward(float* dq, float* dk, float* dv, const float* da, const float* p, const float* q,
                          const float* k, const float* v, int N, int L, int C) override;
  void timestep_embedding(float* out, const float* t, int N, int dim) override;
  void nchw_to_nhwc(float* out, const float* in, int N, int C, int H, int W) override;
  void nhwc_to_nchw(float* out, const float* in, int N, int C, int H, int W) override;
  double sum_squares(const float* x, int64_t n) override;
  void adam_ema_update(float* param, float* m, float* v, float* ema, const float* grad, int64_t n,
                       const AdamStep& s) override;
  DiffusionOps& diffusion() override;  // host_diffusion_ops(), diffusion.cpp

  ~CpuOps() override;

  dnnl::engine& engine() { return engine_; }
  // A primitive's arguments as oneDNN's C API takes them, built once with the primitive
  // (its memory objects are only re-pointed per call, so the handles stay valid):
  // dnnl.hpp's execute would copy its argument map into a new vector on every call.
  using PrimitiveArgs = std::vector<dnnl_exec_arg_t>;
  static PrimitiveArgs primitive_args(const std::unordered_map<int, dnnl::memory>& args);
  // Runs p on the backend's stream and waits for it, marked as a call into oneDNN
  // (core/library_calls.h).
  void run_primitive(const dnnl::primitive& p, const PrimitiveArgs& args);
  // Scratch slot `slot` (core/scratch_slots.h) of at least `bytes` bytes, 64-byte
  // aligned: grows to the largest request, never shrinks. Valid until the next request
  // of the same slot.
  void* scratch(int slot, size_t bytes);
  template <typename T>
  T* scratch_as(int slot, int64_t count) {
    return static_cast<T*>(scratch(slot, sizeof(T) * static_cast<size_t>(count)));
  }

  // Row-major C [M, N] (+= when accumulate) = alpha op(A) op(B), op(A) [M, K], op(B)
  // [K, N], through a oneDNN matmul primitive built on the first call of each shape
  // (matmul.cpp). Not CudaOps::gemm's arguments: that one is column-major (cuBLAS's
  // convention), takes beta and batches with strides; this one takes accumulate for
  // beta 0 or 1 and one matrix (attention loops over the images itself).
  // In bf16 both operands are rounded to bf16 copies first (kSlotGemmA/B).
  void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
            const float* B, int64_t ldb, bool accumulate, float* C, int64_t ldc);
  // dst [rows, cols] dense = src [rows, cols] (row stride ld) rounded to bf16 (nearest
  // even), bf16.cpp.
  void to_bf16(uint16_t* dst, const float* src, int64_t rows, int64_t cols, int64_t ld);

 private:
  struct GemmShape {
    int64_t M, N, K, lda, ldb, ldc;  // bf16: lda and ldb of the dense copies
    bool trans_a, trans_b, accumulate, bf16;
    float alpha;
    bool operator<(const GemmShape& o) const;
  };
  // One shape's primitive, its memory objects (re-pointed per call) and argument map.
  struct Matmul {
    Matmul(const dnnl::engine& eng, const GemmShape& s);  // matmul.cpp
    dnnl::matmul primitive;
    dnnl::memory a, b, c, scratchpad;
    size_t scratchpad_bytes = 0;
    PrimitiveArgs args;
  };

  Precision precision_;
  bool winograd_;
  WinogradSizes winograd_sizes_ = default_winograd_sizes();
  dnnl::engine engine_;
  dnnl::stream stream_;
  struct Scratch {
    void* p = nullptr;
    size_t bytes = 0;
  };
  std::vector<Scratch> scratch_;
  std::map<GemmShape, std::unique_ptr<Matmul>> matmuls_;
};

// Sets flush-to-zero and denormals-are-zero in the calling thread and in every OpenMP
// thread (a training step runs ~10x slower on this CPU without it).
void enable_flush_denormals();

}  // namespace ddpm
