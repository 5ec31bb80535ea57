// The CUDA backend: one GPU, one stream, every Ops method as a kernel on that stream
// (cuDNN for convolutions, cuBLAS for matrix products, src/core/cuda/*.cu for the rest),
// and the diffusion kernels (core/diffusion_ops.h) on the same stream (diffusion.cu).
// Each layer family lives in the file named like its CPU half (conv2d.cu next to
// cpu/conv2d.cpp, ...); this header is the class they all implement.
//
// Memory: backend pointers are device memory. Scratch (bf16 copies, cuDNN workspaces,
// reduction partials, per-example coefficients) lives in the slots of core/scratch_slots.h
// (shared with the CPU backend), so after the first step nothing is allocated on the hot path.
//
// Precision (device.precision, docs/gpu.md): every buffer the Ops interface sees is fp32.
//   fp32  cuDNN FMA math and cuBLAS fp32: IEEE single precision throughout.
//   tf32  the same buffers, convolutions and matrix products on TF32 tensor cores.
//   bf16  convolution and matrix inputs (activations and weights) are rounded to bf16
//         scratch copies; products accumulate in fp32. cuBLAS writes fp32 outputs
//         directly; cuDNN writes bf16 outputs that are widened to fp32 (bias, residual
//         adds, normalisation, softmax, the optimizer and every reduction stay fp32).
#pragma once

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/cuda/cuda_check.h"
#include "core/diffusion_ops.h"
#include "core/ops.h"
#include "core/precision.h"
#include "core/scratch_slots.h"

namespace ddpm {

// The cuDNN algorithms of one convolution shape and precision, chosen once by
// cudnnFind* (conv2d.cu) and shared by every layer of that shape.
struct ConvPlan {
  bool bf16 = false;  // false also when bf16 was asked for but cuDNN has no bf16 kernel
  cudnnConvolutionFwdAlgo_t fwd_algo{};
  cudnnConvolutionBwdDataAlgo_t data_algo{};
  cudnnConvolutionBwdFilterAlgo_t filter_algo{};
  cudnnMathType_t fwd_math{}, data_math{}, filter_math{};
  size_t workspace_bytes = 0;
};

class CudaOps final : public Ops {
 public:
  CudaOps(int device, Precision precision);
  ~CudaOps() override;
  CudaOps(const CudaOps&) = delete;
  CudaOps& operator=(const CudaOps&) = delete;
  const char* name() const override { return "cuda"; }

  float* alloc(int64_t n) override;
  void release(float* p) override;
  void zero(float* p, int64_t n) override;
  void copy(float* dst, const float* src, int64_t n) override;
  // The host buffer may be reused as soon as upload returns (it is staged or copied).
  void upload(float* dst, const float* host, int64_t n) override;
  void download(float* host, const float* src, int64_t n) override;  // synchronous
  void synchronize() override;

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

  DiffusionOps& diffusion() override { return *diffusion_; }

  void run_graph(int key, const std::function<void()>& work) override;
  void drop_graphs() override;

  // --- for the layer files and the NCCL all-reduce -------------------------------------
  int device() const { return device_; }
  Precision precision() const override { return precision_; }
  cudaStream_t stream() const { return stream_; }
  cudnnHandle_t cudnn() const { return cudnn_; }
  // Scratch slot `slot` of at least `bytes` bytes, valid until the next request of the
  // same slot. Growing is refused while a graph is being captured.
  void* scratch(int slot, size_t bytes);
  template <typename T>
  T* scratch_as(int slot, int64_t count) {
    return static_cast<T*>(scratch(slot, sizeof(T) * static_cast<size_t>(count)));
  }
  // Uploads n bytes from pageable host memory into slot `slot` (stream-ordered).
  void* upload_to_scratch(int slot, const void* host, size_t bytes);
  // True while run_graph captures on this stream.
  bool capturing() const;

  // Column-major GEMM on the stream, C = alpha op(A) op(B) + beta C, batched with element
  // strides (0 for a single matrix). Operands are fp32; in bf16 mode A and B are rounded
  // to bf16 scratch first (slots kSlotGemmA/B), and C stays fp32.
  void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* A, int lda, int64_t stride_a,
            const float* B, int ldb, int64_t stride_b, float beta, float* C, int ldc, int64_t stride_c,
            int batch = 1);
  // db [O] += sum over the M rows of x [M, O], in a fixed order (deterministic).
  void add_column_sums(float* db, const float* x, int64_t M, int O);
  // Rounds n floats to bf16 into dst (device).
  void to_bf16(__nv_bfloat16* dst, const float* src, int64_t n);
  // Convolution plans by shape (conv2d.cu fills it).
  std::map<std::string, ConvPlan>& conv_plans() { return conv_plans_; }

 private:
  struct Scratch {
    void* p = nullptr;
    size_t bytes = 0;
  };
  struct Graph {
    int eager_runs = 0;
    cudaGraphExec_t exec = nullptr;
    uint64_t scratch_epoch = 0;
  };

  int device_;
  Precision precision_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  void* cublas_workspace_ = nullptr;
  std::vector<Scratch> scratch_;
  uint64_t scratch_epoch_ = 0;  // bumped whenever a slot moves: captured graphs are stale
  std::map<int, Graph> graphs_;
  std::map<std::string, ConvPlan> conv_plans_;
  std::unique_ptr<DiffusionOps> diffusion_;  // on this stream and scratch
};

// The diffusion kernels on `ops`' device (diffusion.cu).
std::unique_ptr<DiffusionOps> make_cuda_diffusion_ops(CudaOps& ops);

}  // namespace ddpm
