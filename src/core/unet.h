// The DDPM U-Net (Ho et al. 2020, appendix B; the PixelCNN++-style backbone of the
// reference code), in one file: the time embedding, the down path with skip
// connections, the middle, the up path and the output head. Parameters are named as
// the pytorch_diffusion port names them; activations are NHWC.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "core/arena.h"
#include "core/blocks.h"
#include "core/config.h"
#include "core/params.h"

namespace ddpm {

class UNet {
 public:
  explicit UNet(const ModelConfig& cfg);
  ~UNet();
  UNet(const UNet&) = delete;
  UNet& operator=(const UNet&) = delete;

  const ModelConfig& config() const { return cfg_; }
  const ParamLayout& layout() const { return layout_; }
  int64_t macs_per_image() const;  // forward multiply-accumulates

  // Binds the backend and the per-rank batch: builds the primitives and plans the
  // activations. Cheap when nothing changed; call before every pass. The Ops must
  // outlive the model (its memory and primitives belong to the backend).
  void prepare(Ops& ops, int N);
  int batch() const { return N_; }

  // eps [N, R, R, out_ch] from x [N, R, R, in_channels] and t [N] (float timesteps),
  // all NHWC backend memory. `training` turns dropout on (keyed by ps.dropout).
  void forward(const Pass& ps, float* eps, const float* x, const float* t);
  // Called during backward with an offset: from there to the end of the flat buffer,
  // every parameter gradient is final (the layout is in forward order, so this offset
  // only decreases; the last call passes 0).
  using GradReadyFn = std::function<void(int64_t first_final_offset)>;
  // Accumulates parameter gradients into ps.grads from d_eps [N, R, R, out_ch].
  void backward(const Pass& ps, const float* d_eps, const GradReadyFn& ready = nullptr);

 private:
  struct Level {
    std::vector<ResBlock> blocks;
    std::vector<AttnBlock> attns;
    std::unique_ptr<Downsample> down;
    std::unique_ptr<Upsample> up;
    int res = 0;
  };
  // A tensor of the skip list (hs in the reference code) with its gradient.
  struct Skip {
    float* act = nullptr;
    float* grad = nullptr;
    int ch = 0, res = 0;
  };

  void plan(Arena& arena, int N);

  ModelConfig cfg_;
  ParamLayout layout_;
  int temb_ch_;
  LinearParams dense0_, dense1_;
  ConvLayer conv_in_, conv_out_;
  NormParams norm_out_;
  std::vector<Level> down_, up_;
  std::unique_ptr<ResBlock> mid_block1_, mid_block2_;
  std::unique_ptr<AttnBlock> mid_attn_;

  Ops* ops_ = nullptr;
  int N_ = 0;
  Arena arena_;
  // Activations (arena): time embedding path, skips, the up path, the head.
  float *emb_ = nullptr, *t0_ = nullptr, *a0_ = nullptr, *temb_ = nullptr, *temb_act_ = nullptr;
  float *dtemb_act_ = nullptr, *dtemb_ = nullptr, *da0_ = nullptr;
  std::vector<Skip> skips_;
  float *mid_a_ = nullptr, *mid_b_ = nullptr, *mid_c_ = nullptr;
  std::vector<std::vector<float*>> down_block_out_, up_cat_, up_block_out_, up_attn_out_;
  std::vector<float*> up_resampled_;
  const float* x_in_ = nullptr;
  const float* head_in_ = nullptr;
  float *head_h_ = nullptr, *head_mean_ = nullptr, *head_rstd_ = nullptr;
  float *grad_a_ = nullptr, *grad_b_ = nullptr, *grad_cat_ = nullptr;
};

}  // namespace ddpm
