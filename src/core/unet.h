// The DDPM U-Net (Ho et al. 2020, appendix B; the PixelCNN++-style backbone of the
// reference code), described once in unet.cpp as a graph of nodes (core/graph.h): the
// time embedding, the down path with its skip connections, the middle, the up path
// and the output head. Parameters are named as the pytorch_diffusion port names them;
// activations are NHWC.
#pragma once

#include "core/config.h"
#include "core/graph.h"
#include "core/params.h"

namespace ddpm {

class UNet {
 public:
  explicit UNet(const ModelConfig& cfg);
  UNet(const UNet&) = delete;
  UNet& operator=(const UNet&) = delete;

  const ModelConfig& config() const { return cfg_; }
  const ParamLayout& layout() const { return layout_; }
  int64_t macs_per_image() const { return graph_.macs_per_image(); }  // forward multiply-accumulates

  // Binds the backend and the per-rank batch: builds the primitives and plans the
  // activations (and, unless kForwardOnly, the backward's temporaries and gradients).
  // Cheap when nothing changed; call before every pass. The Ops must outlive the model
  // (its memory and primitives belong to the backend).
  void prepare(Ops& ops, int N, PlanMode mode = PlanMode::kTraining) { graph_.prepare(ops, N, mode); }
  int batch() const { return graph_.batch(); }
  int64_t activation_floats() const { return graph_.arena_floats(); }

  // eps [N, R, R, out_ch] from x [N, R, R, in_channels] and t [N] (float timesteps),
  // all NHWC backend memory. `ps.training` turns dropout on (keyed by ps.dropout).
  void forward(const Pass& ps, float* eps, const float* x, const float* t) {
    const float* inputs[] = {x, t};
    graph_.forward(ps, inputs, eps);
  }
  using GradReadyFn = Graph::GradReadyFn;
  // Accumulates parameter gradients into ps.grads from d_eps [N, R, R, out_ch]; calls
  // `ready` as the gradients of the buffer's tail become final (see Graph).
  void backward(const Pass& ps, const float* d_eps, const GradReadyFn& ready = nullptr) {
    graph_.backward(ps, d_eps, ready);
  }

 private:
  ModelConfig cfg_;
  ParamLayout layout_;
  Graph graph_;
};

}  // namespace ddpm
