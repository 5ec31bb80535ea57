// Convolution on the GPU through cuDNN (the legacy cudnnConvolution* API), NHWC
// activations and KRSC (NHWC-ordered) filters: the layout cuDNN's tensor-core kernels
// run on directly. Per shape and precision the algorithms are chosen once with
// cudnnFind* (fastest deterministic one that fits the workspace limit) and cached in
// CudaOps; the filter is reordered from the OIHW parameter buffer only when the
// weights change (a new pointer or version), as on the CPU.
//
// cuDNN pads symmetrically; an asymmetric padding (Downsample's (0,1,0,1)) is split
// into its symmetric part and an explicit zero border on a copy of the input.
// bf16: input, filter and dout are bf16 copies, cuDNN computes in fp32 and writes bf16
// y / dx / dw, which are widened into the fp32 buffers (with the bias, or added).
#include <algorithm>
#include <cstdio>
#include <type_traits>

#include "core/cuda/kernels.cuh"

namespace ddpm {
namespace {

using cuda::grid_for;
using cuda::kThreads;

constexpr size_t kWorkspaceLimit = size_t{1} << 30;  // per algorithm

// dst [N, Hp, Wp, C] (T) = src [N, H, W, C] placed at (top, left), zeros around it.
template <typename T>
__global__ void pack_input_kernel(T* dst, const float* src, int N, int H, int W, int C, int Hp, int Wp, int top,
                                  int left) {
  const int64_t total = static_cast<int64_t>(N) * Hp * Wp * C;
  DDPM_GRID_STRIDE(i, total) {
    const cuda::NhwcIndex at = cuda::nhwc_index(i, Hp, Wp, C);
    const int y = at.y - top, x = at.x - left;
    const bool inside = y >= 0 && y < H && x >= 0 && x < W;
    dst[i] = cuda::from_float<T>(inside ? src[((at.n * H + y) * W + x) * C + at.c] : 0.0f);
  }
}

// dst [N, H, W, C] = (accumulate ? dst : 0) + src[n, y + top, x + left, c] + bias[c], where
// src [N, Hs, Ws, C] and bias are nullable.
template <typename T>
__global__ void widen_add_kernel(float* dst, bool accumulate, const T* src, const float* bias, int N, int H, int W,
                                 int C, int Hs, int Ws, int top, int left) {
  const int64_t total = static_cast<int64_t>(N) * H * W * C;
  DDPM_GRID_STRIDE(i, total) {
    const cuda::NhwcIndex at = cuda::nhwc_index(i, H, W, C);
    float v = accumulate ? dst[i] : 0.0f;
    if (src) v += cuda::to_float<T>(src[((at.n * Hs + at.y + top) * Ws + at.x + left) * C + at.c]);
    if (bias) v += bias[at.c];
    dst[i] = v;
  }
}

// w_krsc [O, KH, KW, C] (T) from w [O, C, KH, KW] (float)
template <typename T>
__global__ void oihw_to_krsc_kernel(T* dst, const float* w, int O, int C, int KH, int KW) {
  const int64_t total = static_cast<int64_t>(O) * C * KH * KW;
  DDPM_GRID_STRIDE(i, total) {
    const cuda::NhwcIndex at = cuda::nhwc_index(i, KH, KW, C);  // [O, KH, KW, C]: n = o, y = ky, x = kx
    dst[i] = cuda::from_float<T>(w[((at.n * C + at.c) * KH + at.y) * KW + at.x]);
  }
}

// dw [O, C, KH, KW] += dw_krsc [O, KH, KW, C]
template <typename T>
__global__ void add_krsc_to_oihw_kernel(float* dw, const T* src, int O, int C, int KH, int KW) {
  const int64_t total = static_cast<int64_t>(O) * C * KH * KW;
  DDPM_GRID_STRIDE(i, total) {
    const int kx = static_cast<int>(i % KW);
    int64_t r = i / KW;
    const int ky = static_cast<int>(r % KH);
    r /= KH;
    const int c = static_cast<int>(r % C);
    const int64_t o = r / C;
    dw[i] += cuda::to_float<T>(src[((o * KH + ky) * KW + kx) * C + c]);
  }
}

// The fastest algorithm that succeeded, fits the limit, is deterministic when asked
// and, in fp32 mode, uses no tensor cores. perf is sorted by time (cudnnFind*).
template <typename Perf>
int pick_algorithm(const Perf* perf, int count, bool need_deterministic, bool fma_only) {
  for (int pass = 0; pass < 2; ++pass) {
    for (int i = 0; i < count; ++i) {
      const Perf& p = perf[i];
      if (p.status != CUDNN_STATUS_SUCCESS || p.memory > kWorkspaceLimit) continue;
      if (need_deterministic && pass == 0 && p.determinism != CUDNN_DETERMINISTIC) continue;
      if (fma_only && (p.mathType == CUDNN_TENSOR_OP_MATH || p.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION)) {
        continue;
      }
      return i;
    }
  }
  return -1;
}

class CudaConv2d final : public Conv2d {
 public:
  CudaConv2d(CudaOps& ops, const ConvSpec& s) : Conv2d(s), ops_(ops) {
    pad_h_ = std::min(s.pad_top, s.pad_bottom);
    pad_w_ = std::min(s.pad_left, s.pad_right);
    top_ = s.pad_top - pad_h_;
    left_ = s.pad_left - pad_w_;
    Hp_ = s.H + top_ + (s.pad_bottom - pad_h_);
    Wp_ = s.W + left_ + (s.pad_right - pad_w_);
    padded_ = Hp_ != s.H || Wp_ != s.W;
    DDPM_CHECK_CUDNN(cudnnCreateTensorDescriptor(&x_desc_));
    DDPM_CHECK_CUDNN(cudnnCreateTensorDescriptor(&y_desc_));
    DDPM_CHECK_CUDNN(cudnnCreateFilterDescriptor(&w_desc_));
    for (auto* d : {&fwd_conv_, &data_conv_, &filter_conv_}) DDPM_CHECK_CUDNN(cudnnCreateConvolutionDescriptor(d));

    const std::string key = cat(s.N, ",", s.H, ",", s.W, ",", s.C, ",", s.O, ",", s.KH, "x", s.KW, ",", s.stride, ",",
                                s.pad_top, ",", s.pad_left, ",", s.pad_bottom, ",", s.pad_right, ",",
                                precision_name(ops.precision()));
    auto it = ops.conv_plans().find(key);
    if (it != ops.conv_plans().end()) {
      plan_ = it->second;
      describe(plan_.bf16);
    } else {
      bool found = ops.precision() == Precision::kBf16 && find_plan(true);
      if (!found && !find_plan(false)) {
        throw Error(cat("cuDNN has no usable algorithm for the convolution ", key));
      }
      if (ops.precision() == Precision::kBf16 && !plan_.bf16) {
        std::fprintf(stderr, "ddpm: cuDNN has no bf16 kernel for convolution %s; it runs in fp32/TF32\n",
                     key.c_str());
      }
      ops.conv_plans()[key] = plan_;
    }
    DDPM_CHECK_CUDNN(cudnnSetConvolutionMathType(fwd_conv_, plan_.fwd_math));
    DDPM_CHECK_CUDNN(cudnnSetConvolutionMathType(data_conv_, plan_.data_math));
    DDPM_CHECK_CUDNN(cudnnSetConvolutionMathType(filter_conv_, plan_.filter_math));
    ops.scratch(kSlotWorkspace, plan_.workspace_bytes);  // grown now, never on the hot path
    const size_t elem = plan_.bf16 ? sizeof(__nv_bfloat16) : sizeof(float);
    DDPM_CHECK_CUDA(cudaMalloc(&w_cache_, elem * static_cast<size_t>(s.weight_count())));
  }

  ~CudaConv2d() override {
    cudaStreamSynchronize(ops_.stream());
    cudaFree(w_cache_);
    cudnnDestroyTensorDescriptor(x_desc_);
    cudnnDestroyTensorDescriptor(y_desc_);
    cudnnDestroyFilterDescriptor(w_desc_);
    for (auto d : {fwd_conv_, data_conv_, filter_conv_}) cudnnDestroyConvolutionDescriptor(d);
  }

  void forward(float* out, bool accumulate, const float* in, const float* w, const float* b,
               uint64_t w_version) override {
    if (plan_.bf16) {
      forward_typed<__nv_bfloat16>(out, accumulate, in, w, b, w_version);
    } else {
      forward_typed<float>(out, accumulate, in, w, b, w_version);
    }
  }

  void backward(float* din, bool accumulate, float* dw, float* db, const float* dout, const float* in, const float* w,
                uint64_t w_version) override {
    if (plan_.bf16) {
      backward_typed<__nv_bfloat16>(din, accumulate, dw, db, dout, in, w, w_version);
    } else {
      backward_typed<float>(din, accumulate, dw, db, dout, in, w, w_version);
    }
  }

 private:
  int64_t packed_elems() const { return static_cast<int64_t>(spec_.N) * Hp_ * Wp_ * spec_.C; }
  int64_t out_elems() const { return static_cast<int64_t>(spec_.N) * spec_.out_h() * spec_.out_w() * spec_.O; }
  int64_t w_elems() const { return spec_.weight_count(); }

  // Descriptors for the given element type; false if cuDNN refuses them.
  bool describe(bool bf16) {
    const cudnnDataType_t dt = bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    const ConvSpec& s = spec_;
    if (cudnnSetTensor4dDescriptor(x_desc_, CUDNN_TENSOR_NHWC, dt, s.N, s.C, Hp_, Wp_) != CUDNN_STATUS_SUCCESS ||
        cudnnSetTensor4dDescriptor(y_desc_, CUDNN_TENSOR_NHWC, dt, s.N, s.O, s.out_h(), s.out_w()) !=
            CUDNN_STATUS_SUCCESS ||
        cudnnSetFilter4dDescriptor(w_desc_, dt, CUDNN_TENSOR_NHWC, s.O, s.C, s.KH, s.KW) != CUDNN_STATUS_SUCCESS) {
      return false;
    }
    for (auto d : {fwd_conv_, data_conv_, filter_conv_}) {
      DDPM_CHECK_CUDNN(cudnnSetConvolution2dDescriptor(d, pad_h_, pad_w_, s.stride, s.stride, 1, 1,
                                                       CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    }
    int n = 0, c = 0, h = 0, wd = 0;
    DDPM_CHECK_CUDNN(cudnnGetConvolution2dForwardOutputDim(fwd_conv_, x_desc_, w_desc_, &n, &c, &h, &wd));
    DDPM_CHECK(n == s.N && c == s.O && h == s.out_h() && wd == s.out_w(), "cuDNN output shape ", n, "x", c, "x", h,
               "x", wd);
    return true;
  }

  // Benchmarks every algorithm of the three passes (cudnnFind*, once per shape).
  bool find_plan(bool bf16) {
    if (!describe(bf16)) return false;
    const bool fp32 = ops_.precision() == Precision::kFp32;
    const cudnnMathType_t math = fp32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH;
    for (auto d : {fwd_conv_, data_conv_, filter_conv_}) DDPM_CHECK_CUDNN(cudnnSetConvolutionMathType(d, math));
    cudnnHandle_t h = ops_.cudnn();
    int count = 0;

    cudnnConvolutionFwdAlgoPerf_t fwd[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    if (cudnnFindConvolutionForwardAlgorithm(h, x_desc_, w_desc_, fwd_conv_, y_desc_, CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
                                             &count, fwd) != CUDNN_STATUS_SUCCESS) {
      return false;
    }
    const int f = pick_algorithm(fwd, count, false, fp32);
    cudnnConvolutionBwdDataAlgoPerf_t data[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    if (f < 0 || cudnnFindConvolutionBackwardDataAlgorithm(h, w_desc_, y_desc_, data_conv_, x_desc_,
                                                           CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &count,
                                                           data) != CUDNN_STATUS_SUCCESS) {
      return false;
    }
    const int d = pick_algorithm(data, count, true, fp32);
    cudnnConvolutionBwdFilterAlgoPerf_t filter[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    if (d < 0 || cudnnFindConvolutionBackwardFilterAlgorithm(h, x_desc_, y_desc_, filter_conv_, w_desc_,
                                                             CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &count,
                                                             filter) != CUDNN_STATUS_SUCCESS) {
      return false;
    }
    const int g = pick_algorithm(filter, count, true, fp32);
    if (g < 0) return false;
    // fp32 keeps FMA math whatever the result reports (DEFAULT would allow TF32).
    auto math_of = [&](cudnnMathType_t reported) { return fp32 ? CUDNN_FMA_MATH : reported; };
    plan_.bf16 = bf16;
    plan_.fwd_algo = fwd[f].algo, plan_.fwd_math = math_of(fwd[f].mathType);
    plan_.data_algo = data[d].algo, plan_.data_math = math_of(data[d].mathType);
    plan_.filter_algo = filter[g].algo, plan_.filter_math = math_of(filter[g].mathType);
    plan_.workspace_bytes = std::max({fwd[f].memory, data[d].memory, filter[g].memory});
    return true;
  }

  // The filter in cuDNN's layout and type, reordered when the weights changed.
  template <typename T>
  const T* filter(const float* w, uint64_t version) {
    if (w != w_ptr_ || version != w_version_) {
      oihw_to_krsc_kernel<T><<<grid_for(w_elems()), kThreads, 0, ops_.stream()>>>(static_cast<T*>(w_cache_), w,
                                                                                  spec_.O, spec_.C, spec_.KH,
                                                                                  spec_.KW);
      DDPM_CHECK_LAUNCH();
      w_ptr_ = w;
      w_version_ = version;
    }
    return static_cast<const T*>(w_cache_);
  }

  // The input as cuDNN reads it: itself, or a padded and/or bf16 copy.
  template <typename T>
  const void* input(const float* in) {
    if (std::is_same<T, float>::value && !padded_) return in;  // cuDNN reads the fp32 input itself
    T* packed = ops_.scratch_as<T>(kSlotConvIn, packed_elems());
    pack_input_kernel<T><<<grid_for(packed_elems()), kThreads, 0, ops_.stream()>>>(
        packed, in, spec_.N, spec_.H, spec_.W, spec_.C, Hp_, Wp_, top_, left_);
    DDPM_CHECK_LAUNCH();
    return packed;
  }

  template <typename T>
  void widen(float* dst, bool accumulate, const T* src, const float* bias, int H, int W, int C, int Hs, int Ws, int top,
             int left) {
    const int64_t n = static_cast<int64_t>(spec_.N) * H * W * C;
    widen_add_kernel<T><<<grid_for(n), kThreads, 0, ops_.stream()>>>(dst, accumulate, src, bias, spec_.N, H, W, C, Hs,
                                                                     Ws, top, left);
    DDPM_CHECK_LAUNCH();
  }

  void* workspace() { return ops_.scratch(kSlotWorkspace, plan_.workspace_bytes); }

  template <typename T>
  void forward_typed(float* out, bool accumulate, const float* in, const float* w, const float* b, uint64_t version) {
    const bool is_float = std::is_same<T, float>::value;
    const T* wk = filter<T>(w, version);
    const void* x = input<T>(in);
    const int Ho = spec_.out_h(), Wo = spec_.out_w();
    const float one = 1.0f, zero = 0.0f, beta = accumulate ? 1.0f : 0.0f;
    // fp32 writes out directly (beta adds); bf16 writes a bf16 copy that is widened.
    void* y = is_float ? static_cast<void*>(out) : ops_.scratch_as<T>(kSlotConvOut, out_elems());
    void* ws = workspace();
    DDPM_CHECK_CUDNN(cudnnConvolutionForward(ops_.cudnn(), &one, x_desc_, x, w_desc_, wk, fwd_conv_, plan_.fwd_algo,
                                             ws, plan_.workspace_bytes, is_float ? &beta : &zero, y_desc_, y));
    widen<T>(out, is_float || accumulate, is_float ? nullptr : static_cast<const T*>(y), b, Ho, Wo, spec_.O, Ho, Wo,
             0, 0);
  }

  template <typename T>
  void backward_typed(float* din, bool accumulate, float* dw, float* db, const float* dout, const float* in,
                      const float* w, uint64_t version) {
    const bool is_float = std::is_same<T, float>::value;
    const float one = 1.0f, zero = 0.0f;
    const void* dy = dout;
    if constexpr (!std::is_same<T, float>::value) {
      T* dy16 = ops_.scratch_as<T>(kSlotConvGrad, out_elems());
      ops_.to_bf16(dy16, dout, out_elems());
      dy = dy16;
    }
    void* ws = workspace();
    if (din != nullptr) {
      const T* wk = filter<T>(w, version);
      if (is_float && !padded_) {
        const float beta = accumulate ? 1.0f : 0.0f;
        DDPM_CHECK_CUDNN(cudnnConvolutionBackwardData(ops_.cudnn(), &one, w_desc_, wk, y_desc_, dy, data_conv_,
                                                      plan_.data_algo, ws, plan_.workspace_bytes, &beta, x_desc_,
                                                      din));
      } else {  // into a (padded, typed) copy, then cropped and widened into din
        T* dx = ops_.scratch_as<T>(kSlotConvOut, packed_elems());
        DDPM_CHECK_CUDNN(cudnnConvolutionBackwardData(ops_.cudnn(), &one, w_desc_, wk, y_desc_, dy, data_conv_,
                                                      plan_.data_algo, ws, plan_.workspace_bytes, &zero, x_desc_, dx));
        widen<T>(din, accumulate, dx, nullptr, spec_.H, spec_.W, spec_.C, Hp_, Wp_, top_, left_);
      }
    }
    const void* x = input<T>(in);
    T* dw_krsc = ops_.scratch_as<T>(kSlotConvOut, w_elems());
    DDPM_CHECK_CUDNN(cudnnConvolutionBackwardFilter(ops_.cudnn(), &one, x_desc_, x, y_desc_, dy, filter_conv_,
                                                    plan_.filter_algo, ws, plan_.workspace_bytes, &zero, w_desc_,
                                                    dw_krsc));
    add_krsc_to_oihw_kernel<T><<<grid_for(w_elems()), kThreads, 0, ops_.stream()>>>(dw, dw_krsc, spec_.O, spec_.C,
                                                                                    spec_.KH, spec_.KW);
    DDPM_CHECK_LAUNCH();
    ops_.add_column_sums(db, dout, static_cast<int64_t>(spec_.N) * spec_.out_h() * spec_.out_w(), spec_.O);
  }

  CudaOps& ops_;
  int pad_h_ = 0, pad_w_ = 0, top_ = 0, left_ = 0, Hp_ = 0, Wp_ = 0;
  bool padded_ = false;
  ConvPlan plan_;
  cudnnTensorDescriptor_t x_desc_ = nullptr, y_desc_ = nullptr;
  cudnnFilterDescriptor_t w_desc_ = nullptr;
  cudnnConvolutionDescriptor_t fwd_conv_ = nullptr, data_conv_ = nullptr, filter_conv_ = nullptr;
  void* w_cache_ = nullptr;
  const float* w_ptr_ = nullptr;
  uint64_t w_version_ = ~uint64_t{0};
};

}  // namespace

std::unique_ptr<Conv2d> CudaOps::make_conv2d(const ConvSpec& spec) {
  DDPM_CHECK(spec.N > 0 && spec.C > 0 && spec.O > 0 && spec.out_h() > 0 && spec.out_w() > 0, "bad conv spec");
  DDPM_CHECK(!capturing(), "make_conv2d inside run_graph");
  return std::make_unique<CudaConv2d>(*this, spec);
}

}  // namespace ddpm
