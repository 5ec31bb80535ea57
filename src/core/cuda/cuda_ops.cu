// CudaOps itself: the device, stream and library handles, memory and scratch, graph
// capture and replay, the shared GEMM / bias-gradient helpers, and the data-movement
// kernels (concat/split, layout changes, add).
#include "core/cuda/cuda_ops.h"

#include <cstdio>

#include "core/backend.h"
#include "core/cuda/kernels.cuh"

namespace ddpm {

using cuda::grid_for;
using cuda::kThreads;

std::unique_ptr<Ops> make_cuda_ops(int device, Precision p) {
  int count = 0;
  const cudaError_t rc = cudaGetDeviceCount(&count);
  if (rc != cudaSuccess || count == 0) {
    input_error("device.kind is cuda but no GPU is visible (", rc == cudaSuccess ? "no device" : cudaGetErrorString(rc),
                ")");
  }
  // One GPU per rank: the local rank picks it (wrapping when ranks outnumber GPUs).
  return std::make_unique<CudaOps>(device % count, p);
}

namespace {
// cuBLAS's recommended workspace on Hopper; set explicitly so that graph capture never
// makes cuBLAS allocate.
constexpr size_t kCublasWorkspaceBytes = size_t{32} << 20;
}  // namespace

CudaOps::CudaOps(int device, Precision precision) : device_(device), precision_(precision) {
  DDPM_CHECK_CUDA(cudaSetDevice(device_));
  DDPM_CHECK_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  DDPM_CHECK_CUBLAS(cublasCreate(&cublas_));
  DDPM_CHECK_CUBLAS(cublasSetStream(cublas_, stream_));
  DDPM_CHECK_CUDA(cudaMalloc(&cublas_workspace_, kCublasWorkspaceBytes));
  DDPM_CHECK_CUBLAS(cublasSetWorkspace(cublas_, cublas_workspace_, kCublasWorkspaceBytes));
  // fp32 must not silently become TF32; tf32 is asked for per call (compute type).
  DDPM_CHECK_CUBLAS(cublasSetMathMode(cublas_, precision_ == Precision::kFp32 ? CUBLAS_PEDANTIC_MATH
                                                                                : CUBLAS_DEFAULT_MATH));
  DDPM_CHECK_CUDNN(cudnnCreate(&cudnn_));
  DDPM_CHECK_CUDNN(cudnnSetStream(cudnn_, stream_));
  scratch_.resize(kSlotCount);
  diffusion_ = make_cuda_diffusion_ops(*this);
}

CudaOps::~CudaOps() {
  // Destructors must not throw: report and go on.
  cudaStreamSynchronize(stream_);
  for (auto& [key, g] : graphs_) {
    if (g.exec) cudaGraphExecDestroy(g.exec);
  }
  for (Scratch& s : scratch_) {
    if (s.p) cudaFree(s.p);
  }
  if (cudnn_) cudnnDestroy(cudnn_);
  if (cublas_) cublasDestroy(cublas_);
  if (cublas_workspace_) cudaFree(cublas_workspace_);
  if (stream_) cudaStreamDestroy(stream_);
}

// --- memory -----------------------------------------------------------------------------

float* CudaOps::alloc(int64_t n) {
  DDPM_CHECK(!capturing(), "alloc inside run_graph");
  float* p = nullptr;
  DDPM_CHECK_CUDA(cudaMalloc(&p, sizeof(float) * static_cast<size_t>(std::max<int64_t>(n, 1))));
  DDPM_CHECK_CUDA(cudaMemsetAsync(p, 0, sizeof(float) * static_cast<size_t>(n), stream_));
  return p;
}

void CudaOps::release(float* p) {
  if (!p) return;
  DDPM_CHECK_CUDA(cudaStreamSynchronize(stream_));  // nothing queued may still use it
  DDPM_CHECK_CUDA(cudaFree(p));
}

void CudaOps::zero(float* p, int64_t n) {
  if (n > 0) DDPM_CHECK_CUDA(cudaMemsetAsync(p, 0, sizeof(float) * static_cast<size_t>(n), stream_));
}

void CudaOps::copy(float* dst, const float* src, int64_t n) {
  if (dst == src || n <= 0) return;
  DDPM_CHECK_CUDA(cudaMemcpyAsync(dst, src, sizeof(float) * static_cast<size_t>(n), cudaMemcpyDeviceToDevice, stream_));
}

// From pageable memory cudaMemcpyAsync returns once the data is staged, so the caller
// may reuse its buffer at once (CUDA's documented synchronisation behaviour).
void CudaOps::upload(float* dst, const float* host, int64_t n) {
  if (n <= 0) return;
  DDPM_CHECK_CUDA(cudaMemcpyAsync(dst, host, sizeof(float) * static_cast<size_t>(n), cudaMemcpyHostToDevice, stream_));
}

void CudaOps::download(float* host, const float* src, int64_t n) {
  if (n <= 0) return;
  DDPM_CHECK_CUDA(cudaMemcpyAsync(host, src, sizeof(float) * static_cast<size_t>(n), cudaMemcpyDeviceToHost, stream_));
  DDPM_CHECK_CUDA(cudaStreamSynchronize(stream_));
}

void CudaOps::synchronize() { DDPM_CHECK_CUDA(cudaStreamSynchronize(stream_)); }

bool CudaOps::capturing() const {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  DDPM_CHECK_CUDA(cudaStreamIsCapturing(stream_, &status));
  return status != cudaStreamCaptureStatusNone;
}

void* CudaOps::scratch(int slot, size_t bytes) {
  Scratch& s = scratch_.at(static_cast<size_t>(slot));
  if (s.bytes >= bytes && s.p) return s.p;
  DDPM_CHECK(!capturing(), "scratch slot ", slot, " grew to ", bytes,
             " bytes inside run_graph: the warm-up call must do the same work");
  // Growth happens in the first steps only: wait for the work queued on the old buffer.
  if (s.p) {
    DDPM_CHECK_CUDA(cudaStreamSynchronize(stream_));
    DDPM_CHECK_CUDA(cudaFree(s.p));
    s.p = nullptr;
  }
  const size_t grown = std::max(bytes, s.bytes + s.bytes / 4);  // fewer regrowths
  DDPM_CHECK_CUDA(cudaMalloc(&s.p, std::max<size_t>(grown, 256)));
  s.bytes = grown;
  ++scratch_epoch_;
  return s.p;
}

void* CudaOps::upload_to_scratch(int slot, const void* host, size_t bytes) {
  void* p = scratch(slot, bytes);
  if (bytes > 0) DDPM_CHECK_CUDA(cudaMemcpyAsync(p, host, bytes, cudaMemcpyHostToDevice, stream_));
  return p;
}

// --- graphs -------------------------------------------------------------------------------

void CudaOps::run_graph(int key, const std::function<void()>& work) {
  Graph& g = graphs_[key];
  if (g.exec && g.scratch_epoch != scratch_epoch_) {  // it points at scratch that moved
    DDPM_CHECK_CUDA(cudaGraphExecDestroy(g.exec));
    g.exec = nullptr;
    g.eager_runs = 0;
  }
  if (g.eager_runs == 0) {  // warm-up: scratch growth, algorithm choice, lazy module loading
    work();
    g.eager_runs = 1;
    return;
  }
  if (!g.exec) {
    DDPM_CHECK_CUDA(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    cudaGraph_t graph = nullptr;
    try {
      work();
    } catch (...) {
      cudaStreamEndCapture(stream_, &graph);  // leave the stream usable
      if (graph) cudaGraphDestroy(graph);
      throw;
    }
    DDPM_CHECK_CUDA(cudaStreamEndCapture(stream_, &graph));
    const cudaError_t rc = cudaGraphInstantiate(&g.exec, graph, 0);
    cudaGraphDestroy(graph);
    DDPM_CHECK_CUDA(rc);
    g.scratch_epoch = scratch_epoch_;
  }
  DDPM_CHECK_CUDA(cudaGraphLaunch(g.exec, stream_));
}

void CudaOps::drop_graphs() {
  for (auto& [key, g] : graphs_) {
    if (g.exec) DDPM_CHECK_CUDA(cudaGraphExecDestroy(g.exec));
  }
  graphs_.clear();
}

// --- GEMM and bias gradients ----------------------------------------------------------------

namespace {

__global__ void to_bf16_kernel(__nv_bfloat16* dst, const float* src, int64_t n) {
  DDPM_GRID_STRIDE(i, n) dst[i] = __float2bfloat16_rn(src[i]);
}

// Elements a column-major matrix of `cols` columns with leading dimension ld spans,
// batched with stride `stride`.
int64_t matrix_span(int ld, int cols, int64_t stride, int batch) {
  return stride * (batch - 1) + static_cast<int64_t>(ld) * cols;
}

}  // namespace

void CudaOps::to_bf16(__nv_bfloat16* dst, const float* src, int64_t n) {
  if (n <= 0) return;
  to_bf16_kernel<<<grid_for(n), kThreads, 0, stream_>>>(dst, src, n);
  DDPM_CHECK_LAUNCH();
}

void CudaOps::gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* A, int lda,
                   int64_t stride_a, const float* B, int ldb, int64_t stride_b, float beta, float* C, int ldc,
                   int64_t stride_c, int batch) {
  const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const void* a = A;
  const void* b = B;
  cudaDataType_t in_type = CUDA_R_32F;
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  if (precision_ == Precision::kTf32) compute = CUBLAS_COMPUTE_32F_FAST_TF32;
  if (precision_ == Precision::kBf16) {
    // op(A) is m x k: A has (trans_a ? m : k) columns; op(B) is k x n.
    const int64_t na = matrix_span(lda, trans_a ? m : k, stride_a, batch);
    const int64_t nb = matrix_span(ldb, trans_b ? k : n, stride_b, batch);
    __nv_bfloat16* a16 = scratch_as<__nv_bfloat16>(kSlotGemmA, na);
    __nv_bfloat16* b16 = scratch_as<__nv_bfloat16>(kSlotGemmB, nb);
    to_bf16(a16, A, na);
    to_bf16(b16, B, nb);
    a = a16, b = b16;
    in_type = CUDA_R_16BF;
  }
  if (batch == 1) {
    DDPM_CHECK_CUBLAS(cublasGemmEx(cublas_, op_a, op_b, m, n, k, &alpha, a, in_type, lda, b, in_type, ldb, &beta, C,
                                   CUDA_R_32F, ldc, compute, CUBLAS_GEMM_DEFAULT));
  } else {
    DDPM_CHECK_CUBLAS(cublasGemmStridedBatchedEx(cublas_, op_a, op_b, m, n, k, &alpha, a, in_type, lda, stride_a, b,
                                                 in_type, ldb, stride_b, &beta, C, CUDA_R_32F, ldc, stride_c, batch,
                                                 compute, CUBLAS_GEMM_DEFAULT));
  }
}

namespace {

// x [M, O] viewed as [1, M, O]: the value at row p, column c.
struct RowMajorValue {
  const float* x;
  int O;
  __device__ double2 operator()(int, int p, int c) const {
    return make_double2(static_cast<double>(x[static_cast<int64_t>(p) * O + c]), 0.0);
  }
};

__global__ void add_totals_kernel(float* db, const double2* total, int O) {
  const int o = blockIdx.x * blockDim.x + threadIdx.x;
  if (o < O) db[o] += static_cast<float>(total[o].x);
}

}  // namespace

namespace cuda {
__global__ void channel_totals_kernel(double2* total, const double2* partial, int N, int C, int chunks) {
  const int64_t nc = static_cast<int64_t>(N) * C;
  DDPM_GRID_STRIDE(i, nc) {
    const int64_t n = i / C, c = i % C;
    double2 acc = make_double2(0.0, 0.0);
    for (int k = 0; k < chunks; ++k) {
      const double2 v = partial[(n * chunks + k) * C + c];
      acc.x += v.x;
      acc.y += v.y;
    }
    total[i] = acc;
  }
}
}  // namespace cuda

void CudaOps::add_column_sums(float* db, const float* x, int64_t M, int O) {
  DDPM_CHECK(M <= INT32_MAX, "add_column_sums: ", M, " rows");
  const double2* total = cuda::channel_sums(*this, 1, static_cast<int>(M), O, RowMajorValue{x, O});
  add_totals_kernel<<<(O + kThreads - 1) / kThreads, kThreads, 0, stream_>>>(db, total, O);
  DDPM_CHECK_LAUNCH();
}

// --- data movement -----------------------------------------------------------------------------

namespace {

__global__ void add_kernel(float* dst, const float* src, int64_t n) { DDPM_GRID_STRIDE(i, n) dst[i] += src[i]; }

// out [M, Ca + Cb] = [a | b]
__global__ void concat_kernel(float* out, const float* a, const float* b, int64_t M, int Ca, int Cb) {
  const int C = Ca + Cb;
  DDPM_GRID_STRIDE(i, M * C) {
    const int64_t m = i / C;
    const int c = static_cast<int>(i % C);
    out[i] = c < Ca ? a[m * Ca + c] : b[m * Cb + (c - Ca)];
  }
}

// da [M, Ca], db [M, Cb] from dout [M, Ca + Cb]
__global__ void split_kernel(float* da, float* db, const float* dout, int64_t M, int Ca, int Cb) {
  const int C = Ca + Cb;
  DDPM_GRID_STRIDE(i, M * C) {
    const int64_t m = i / C;
    const int c = static_cast<int>(i % C);
    if (c < Ca) da[m * Ca + c] = dout[i];
    else db[m * Cb + (c - Ca)] = dout[i];
  }
}

// out [M, out_ch] columns [out_first, + count) = in [M, in_ch] columns [in_first, + count)
__global__ void copy_channels_kernel(float* out, int out_ch, int out_first, const float* in, int in_ch, int in_first,
                                     int count, int64_t M) {
  DDPM_GRID_STRIDE(i, M * count) {
    const int64_t m = i / count;
    const int c = static_cast<int>(i % count);
    out[m * out_ch + out_first + c] = in[m * in_ch + in_first + c];
  }
}

// Transposes the last two dims of [N, R, S] into [N, S, R] (NCHW <-> NHWC).
__global__ void transpose_kernel(float* out, const float* in, int N, int64_t R, int64_t S) {
  DDPM_GRID_STRIDE(i, N * R * S) {
    const int64_t n = i / (R * S), rs = i % (R * S);
    const int64_t r = rs / S, s = rs % S;
    out[(n * S + s) * R + r] = in[i];
  }
}

}  // namespace

void CudaOps::add_inplace(float* dst, const float* src, int64_t n) {
  if (n <= 0) return;
  add_kernel<<<grid_for(n), kThreads, 0, stream_>>>(dst, src, n);
  DDPM_CHECK_LAUNCH();
}

void CudaOps::concat_channels(float* out, const float* a, const float* b, int64_t M, int Ca, int Cb) {
  concat_kernel<<<grid_for(M * (Ca + Cb)), kThreads, 0, stream_>>>(out, a, b, M, Ca, Cb);
  DDPM_CHECK_LAUNCH();
}

void CudaOps::split_channels(float* da, float* db, const float* dout, int64_t M, int Ca, int Cb) {
  split_kernel<<<grid_for(M * (Ca + Cb)), kThreads, 0, stream_>>>(da, db, dout, M, Ca, Cb);
  DDPM_CHECK_LAUNCH();
}

void CudaOps::copy_channels(float* out, int out_ch, int out_first, const float* in, int in_ch, int in_first,
                            int count, int64_t M) {
  if (M * count <= 0) return;
  copy_channels_kernel<<<grid_for(M * count), kThreads, 0, stream_>>>(out, out_ch, out_first, in, in_ch, in_first,
                                                                      count, M);
  DDPM_CHECK_LAUNCH();
}

void CudaOps::nchw_to_nhwc(float* out, const float* in, int N, int C, int H, int W) {
  const int64_t HW = static_cast<int64_t>(H) * W;
  transpose_kernel<<<grid_for(static_cast<int64_t>(N) * C * HW), kThreads, 0, stream_>>>(out, in, N, C, HW);
  DDPM_CHECK_LAUNCH();
}

void CudaOps::nhwc_to_nchw(float* out, const float* in, int N, int C, int H, int W) {
  const int64_t HW = static_cast<int64_t>(H) * W;
  transpose_kernel<<<grid_for(static_cast<int64_t>(N) * C * HW), kThreads, 0, stream_>>>(out, in, N, HW, C);
  DDPM_CHECK_LAUNCH();
}

}  // namespace ddpm
