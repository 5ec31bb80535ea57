// The backend interface: every computation the networks (the U-Net, the evaluation's
// Inception) and the optimizer run goes through Ops, implemented by the CPU
// (src/core/cpu, oneDNN and plain C++) and CUDA (src/core/cuda) backends. The diffusion
// process's kernels are an interface of their own (core/diffusion_ops.h) that each
// backend hands out through diffusion(). Pointers are backend memory.
//
// Activations are NHWC ([N, H, W, C], channels fastest): a 1x1 convolution is then a
// plain matrix product, GroupNorm reads contiguous groups, and both oneDNN and cuDNN
// run their fastest convolutions on it. Parameters keep PyTorch shapes (see params.h).
//
// Argument order follows one rule: outputs, saved values, inputs, weights, sizes.
// Parameter gradients accumulate (+=). Activation gradients assign unless the call
// takes `accumulate` (residual paths and tensors with two consumers).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "core/precision.h"

namespace ddpm {

class DiffusionOps;  // core/diffusion_ops.h

// A 2-D convolution of NHWC tensors, weights OIHW [O, C, KH, KW], bias [O].
struct ConvSpec {
  int N = 0, H = 0, W = 0, C = 0;  // input
  int O = 0, KH = 3, KW = 3, stride = 1;
  int pad_top = 1, pad_left = 1, pad_bottom = 1, pad_right = 1;
  // The downsample's geometry: 3x3, stride 2, padded by (0, 1) on each axis (the
  // reference pads explicitly before a VALID convolution).
  ConvSpec& as_downsample() {
    KH = KW = 3, stride = 2, pad_top = pad_left = 0, pad_bottom = pad_right = 1;
    return *this;
  }
  // A KH x KW kernel padded by pad_h rows above and below and pad_w columns left and
  // right (PyTorch's Conv2d(kernel_size=(KH, KW), stride, padding=(pad_h, pad_w))).
  ConvSpec& with_kernel(int kh, int kw, int step, int pad_h, int pad_w) {
    KH = kh, KW = kw, stride = step, pad_top = pad_bottom = pad_h, pad_left = pad_right = pad_w;
    return *this;
  }
  int out_h() const { return (H + pad_top + pad_bottom - KH) / stride + 1; }
  int out_w() const { return (W + pad_left + pad_right - KW) / stride + 1; }
  int64_t weight_count() const { return static_cast<int64_t>(O) * C * KH * KW; }
  bool operator==(const ConvSpec& o) const {
    return N == o.N && H == o.H && W == o.W && C == o.C && O == o.O && KH == o.KH && KW == o.KW &&
           stride == o.stride && pad_top == o.pad_top && pad_left == o.pad_left && pad_bottom == o.pad_bottom &&
           pad_right == o.pad_right;
  }
};

// One convolution layer: the backend builds its primitives once for the spec and keeps
// the weights in its preferred layout, reordered again only when (w, version) changes.
class Conv2d {
 public:
  virtual ~Conv2d() = default;
  // out [N, Ho, Wo, O] (+= when accumulate) = conv(in [N, H, W, C], w) + b
  virtual void forward(float* out, bool accumulate, const float* in, const float* w, const float* b,
                       uint64_t w_version) = 0;
  // din [N, H, W, C] (skipped when null; += when accumulate), dw [O, C, KH, KW] +=, db [O] +=
  virtual void backward(float* din, bool accumulate, float* dw, float* db, const float* dout, const float* in,
                        const float* w, uint64_t w_version) = 0;
  const ConvSpec& spec() const { return spec_; }

 protected:
  explicit Conv2d(const ConvSpec& spec) : spec_(spec) {}
  ConvSpec spec_;
};

// GroupNorm over [N, HW, C] in G groups of C / G channels (eps 1e-6), optionally
// followed by the swish that comes after it in every residual block and at the output.
enum class Activation { kNone, kSwish };
struct GroupNormSpec {
  int N = 0, HW = 0, C = 0, G = 0;
  Activation activation = Activation::kNone;
  bool with_swish() const { return activation == Activation::kSwish; }
  void check() const;  // throws unless G > 0 divides C (ops.cpp), on every backend
};

// A K x K window moved by `stride` over an NHWC tensor [N, H, W, C] padded by `pad` on
// every side (the Inception's pools: 3x3 stride 2 unpadded, 3x3 stride 1 padded by 1).
// Only in-bounds taps count: the padding never wins a max (PyTorch pads with -inf) and
// is not in an average's divisor (TF's average pool, count_include_pad=False).
struct PoolSpec {
  int N = 0, H = 0, W = 0, C = 0;
  int K = 3, stride = 1, pad = 0;
  int out_h() const { return (H + 2 * pad - K) / stride + 1; }
  int out_w() const { return (W + 2 * pad - K) / stride + 1; }
};

// Dropout is keyed, not stateful: the mask of example n, element e is a function of
// (seed, layer, step, example_base + n, e), so backward recomputes it and every rank
// count draws the same masks.
struct DropoutKey {
  uint64_t seed = 0;
  uint32_t layer = 0;
  uint32_t step = 0;
  uint32_t example_base = 0;
};

// One Adam step on a flat span (PyTorch's torch.optim.Adam update), fused with the
// gradient scale and the EMA. The host (core/optim.h) fills it once per step:
//   g = grad * grad_scale
//   m = beta1 m + (1 - beta1) g,   v = beta2 v + (1 - beta2) g²
//   param -= lr / bias_correction1 * m / (sqrt(v) / bias_correction2_sqrt + eps)
//   ema += (1 - ema_decay) (param - ema)          (when ema is not null)
struct AdamStep {
  double lr = 0.0;  // this step's learning rate (after warm-up)
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double bias_correction1 = 1.0;       // 1 - beta1^step
  double bias_correction2_sqrt = 1.0;  // sqrt(1 - beta2^step)
  double grad_scale = 1.0;             // clip factor x gradient averaging
  double ema_decay = 0.9999;
};

class Ops {
 public:
  virtual ~Ops() = default;
  virtual const char* name() const = 0;
  // How convolutions and matrix products compute (core/precision.h); what the backend
  // runs, which may differ from what was asked for (bf16 on a CPU without it).
  virtual Precision precision() const = 0;

  // --- memory ---------------------------------------------------------------------
  virtual float* alloc(int64_t n) = 0;  // zero-filled
  virtual void release(float* p) = 0;
  virtual void zero(float* p, int64_t n) = 0;
  virtual void copy(float* dst, const float* src, int64_t n) = 0;
  virtual void upload(float* dst, const float* host, int64_t n) = 0;
  virtual void download(float* host, const float* src, int64_t n) = 0;
  virtual void synchronize() = 0;
  // True when backend memory is host memory (the CPU backend).
  virtual bool host_memory() const { return false; }

  // --- layers ---------------------------------------------------------------------
  virtual std::unique_ptr<Conv2d> make_conv2d(const ConvSpec& spec) = 0;

  // out [M, O] (+= when accumulate) = in [M, C] · w[O, C]^T + b[O]   (linear layers and 1x1 convs)
  virtual void linear_forward(float* out, bool accumulate, const float* in, const float* w, const float* b,
                              int64_t M, int C, int O) = 0;
  // din [M, C] (null: skip; += when accumulate), dw [O, C] +=, db [O] +=
  virtual void linear_backward(float* din, bool accumulate, float* dw, float* db, const float* dout,
                               const float* in, const float* w, int64_t M, int C, int O) = 0;

  // out [N, HW, C] = (swish)(GroupNorm(in) * w + b); mean, rstd [N, G] are saved for backward.
  virtual void groupnorm_forward(float* out, float* mean, float* rstd, const float* in, const float* w,
                                 const float* b, const GroupNormSpec& spec) = 0;
  // din [N, HW, C] (+= when accumulate), dw, db [C] +=
  virtual void groupnorm_backward(float* din, bool accumulate, float* dw, float* db, const float* dout,
                                  const float* in, const float* mean, const float* rstd, const float* w,
                                  const float* b, const GroupNormSpec& spec) = 0;

  // swish(x) = x * sigmoid(x), elementwise over n values
  virtual void swish_forward(float* out, const float* in, int64_t n) = 0;
  virtual void swish_backward(float* din, const float* dout, const float* in, int64_t n) = 0;

  // x [N, per_example] *= mask / (1 - p), in place (forward and backward alike)
  virtual void dropout_apply(float* x, float p, const DropoutKey& key, int N, int64_t per_example) = 0;

  // x [N, HW, C] += bias[N, C] broadcast over HW (the time embedding projection)
  virtual void add_channel_bias(float* x, const float* bias, int N, int HW, int C) = 0;
  // dbias [N, C] = sum over HW of dx [N, HW, C]
  virtual void sum_over_hw(float* dbias, const float* dx, int N, int HW, int C) = 0;

  // out [N, 2H, 2W, C] = nearest-neighbour x2 of in [N, H, W, C]; backward sums 2x2
  virtual void upsample2x_forward(float* out, const float* in, int N, int H, int W, int C) = 0;
  virtual void upsample2x_backward(float* din, const float* dout, int N, int H, int W, int C) = 0;
  // out [N, H/2, W/2, C] = 2x2 mean of in [N, H, W, C]; din (+= when accumulate)
  virtual void avgpool2x_forward(float* out, const float* in, int N, int H, int W, int C) = 0;
  virtual void avgpool2x_backward(float* din, bool accumulate, const float* dout, int N, int H, int W, int C) = 0;

  // out [M, Ca + Cb] = [a [M, Ca] | b [M, Cb]] along channels; backward splits (assigns)
  virtual void concat_channels(float* out, const float* a, const float* b, int64_t M, int Ca, int Cb) = 0;
  virtual void split_channels(float* da, float* db, const float* dout, int64_t M, int Ca, int Cb) = 0;

  // out[m, out_first + c] = in[m, in_first + c] for m < M, c < count, where out has
  // out_ch channels and in in_ch: one part of a channel concatenation, or a slice.
  virtual void copy_channels(float* out, int out_ch, int out_first, const float* in, int in_ch, int in_first,
                             int count, int64_t M) = 0;

  // dst[i] += src[i] (or dst = src + dst2 forms are composed from this)
  virtual void add_inplace(float* dst, const float* src, int64_t n) = 0;

  // --- forward-only layers (the evaluation's Inception network) ---------------------
  // out = max(in, 0), elementwise over n values; out may be in.
  virtual void relu_forward(float* out, const float* in, int64_t n) = 0;
  // out [N, Ho, Wo, C] = the max / the mean of each window's in-bounds taps of in [N, H, W, C]
  virtual void maxpool_forward(float* out, const float* in, const PoolSpec& spec) = 0;
  virtual void avgpool_forward(float* out, const float* in, const PoolSpec& spec) = 0;
  // out [N, C] = mean over HW of in [N, HW, C], summed in double in a fixed order
  virtual void global_avgpool_forward(float* out, const float* in, int N, int HW, int C) = 0;

  // Single-head attention per image: p [N, L, L] = softmax(q k^T * C^-1/2) over keys,
  // a [N, L, C] = p v, with q, k, v [N, L, C] (L = H*W).
  virtual void attention_forward(float* a, float* p, const float* q, const float* k, const float* v, int N, int L,
                                 int C) = 0;
  virtual void attention_backward(float* dq, float* dk, float* dv, const float* da, const float* p, const float* q,
                                  const float* k, const float* v, int N, int L, int C) = 0;

  // out [N, dim] = [sin(t f) | cos(t f)], f_i = exp(-ln(10000) i / (dim/2 - 1))
  virtual void timestep_embedding(float* out, const float* t, int N, int dim) = 0;

  // Layout changes at the model's boundary: NCHW <-> NHWC.
  virtual void nchw_to_nhwc(float* out, const float* in, int N, int C, int H, int W) = 0;
  virtual void nhwc_to_nchw(float* out, const float* in, int N, int C, int H, int W) = 0;

  // --- optimizer ------------------------------------------------------------------
  // sum of x[i]² in double, in a fixed order (fixed-size chunks, partial sums added in
  // chunk order): the same bits for any thread count or timing.
  virtual double sum_squares(const float* x, int64_t n) = 0;
  // The Adam + EMA update of AdamStep over n elements, in place; ema may be null.
  virtual void adam_ema_update(float* param, float* m, float* v, float* ema, const float* grad, int64_t n,
                               const AdamStep& s) = 0;

  // --- the diffusion kernels ----------------------------------------------------------
  // The backend's implementation of core/diffusion_ops.h (noise, q_sample, the losses,
  // the sampling steps), owned by the backend: an interface of its own, so that the
  // network's ops above know nothing of the diffusion process.
  virtual DiffusionOps& diffusion() = 0;

  // --- replaying a fixed piece of work (CUDA graphs) --------------------------------
  // Runs `work`, a sequence of Ops calls, so that a backend may record it once and
  // replay the record later (the CUDA backend: warm-up on the first call for a key,
  // stream capture into a CUDA graph on the second, graph replay from then on; the
  // default just calls work()). The sampler wraps each step's U-Net forward in it so
  // small batches are not bound by kernel launches. The caller guarantees, for a key:
  //  - every call does the same work: the same methods, sizes, pointers and weight
  //    versions; values that change between calls (t, x_t) are uploaded into the same
  //    device buffers before the call, outside `work`;
  //  - `work` makes no host transfers and no host decisions on device data: no upload,
  //    download, synchronize, sum_squares, and no diffusion() kernel inside it (they
  //    move per-example values between the host and the device);
  //  - the layers it uses were built (UNet::prepare) before the first call and stay.
  // After a replay, the results are in the same buffers as after work() itself, ordered
  // before any later Ops call. Changing any of the above needs a new key or drop_graphs().
  virtual void run_graph(int key, const std::function<void()>& work) { work(); }
  // Forgets every recorded piece of work (e.g. after UNet::prepare for another batch).
  virtual void drop_graphs() {}
};

// The CPU backend (oneDNN + OpenMP). `threads` 0 keeps the OpenMP default. bf16 on a
// CPU without bf16 instructions says so on stderr and runs fp32; tf32 is an InputError
// (a GPU mode). `winograd`: 3×3 convolutions through oneDNN's Winograd kernels where they
// are faster (fp32; core/cpu/conv2d_winograd.h, device.winograd).
std::unique_ptr<Ops> make_cpu_ops(int threads = 0, Precision precision = Precision::kFp32, bool winograd = true);

}  // namespace ddpm
