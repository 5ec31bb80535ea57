#include "core/unet.h"

#include <algorithm>
#include <memory>

#include "core/blocks.h"
#include "core/common.h"

namespace ddpm {
namespace {

bool has_attention(const ModelConfig& cfg, int res) {
  return std::find(cfg.attn_resolutions.begin(), cfg.attn_resolutions.end(), res) != cfg.attn_resolutions.end();
}
std::string name(const char* path, int i, const char* part, int j) { return cat(path, ".", i, ".", part, ".", j); }

}  // namespace

// The whole topology, once. Nodes are added in the order forward runs them, which is
// also the order they register their parameters: backward then finishes gradients from
// the end of the flat buffer towards its start, so the all-reduce can send the tail
// while backward still runs (dist/). The skip list `hs` is the reference code's.
UNet::UNet(const ModelConfig& cfg) : cfg_(cfg) {
  cfg_.validate("model config");
  const int L = static_cast<int>(cfg.ch_mult.size()), nrb = cfg.num_res_blocks, R = cfg.resolution;
  const int temb_ch = 4 * cfg.ch;
  const float dropout = static_cast<float>(cfg.dropout);
  const Resample resample = cfg.resamp_with_conv ? Resample::kWithConv : Resample::kWithoutConv;
  uint32_t layer_id = 0;  // dropout stream of each ResBlock
  Graph& g = graph_;
  auto act = [](int res, int ch) { return TensorShape{res, res, ch}; };

  const Graph::TensorId x = g.input(act(R, cfg.in_channels));
  const Graph::TensorId t = g.input(TensorShape{1, 1, 1});
  const Graph::TensorId temb = g.add(std::make_unique<TimeEmbedding>(layout_, cfg.ch, temb_ch), {t},
                                     TensorShape{1, 1, temb_ch});
  auto res_block = [&](const std::string& prefix, Graph::TensorId in, int out_ch) {
    const TensorShape s = g.shape(in);
    return g.add(std::make_unique<ResBlock>(layout_, prefix, s.C, out_ch, temb_ch, s.H, s.W, dropout, layer_id++),
                 {in, temb}, act(s.H, out_ch));
  };
  auto attn_block = [&](const std::string& prefix, Graph::TensorId in) {
    const TensorShape s = g.shape(in);
    return g.add(std::make_unique<AttnBlock>(layout_, prefix, s.C, s.H, s.W), {in}, s);
  };

  std::vector<Graph::TensorId> hs{
      g.add(std::make_unique<ConvNode>(layout_, "conv_in", cfg.in_channels, cfg.ch, R, R, InitKind::kWeight), {x},
            act(R, cfg.ch))};
  for (int i = 0; i < L; ++i) {
    for (int j = 0; j < nrb; ++j) {
      Graph::TensorId h = res_block(name("down", i, "block", j), hs.back(), cfg.ch * cfg.ch_mult[i]);
      if (has_attention(cfg, g.shape(h).H)) h = attn_block(name("down", i, "attn", j), h);
      hs.push_back(h);
    }
    if (i != L - 1) {
      const TensorShape s = g.shape(hs.back());
      hs.push_back(g.add(std::make_unique<Downsample>(layout_, cat("down.", i, ".downsample"), s.C, s.H, s.W, resample),
                         {hs.back()}, act(s.H / 2, s.C)));
    }
  }

  Graph::TensorId h = res_block("mid.block_1", hs.back(), g.shape(hs.back()).C);
  h = attn_block("mid.attn_1", h);
  h = res_block("mid.block_2", h, g.shape(h).C);

  // Up path, deepest level first; up.0 is the full-resolution level. Each block reads
  // the concatenation of the path and the newest skip tensor.
  for (int i = L - 1; i >= 0; --i) {
    for (int j = 0; j <= nrb; ++j) {
      const TensorShape a = g.shape(h), b = g.shape(hs.back());
      const Graph::TensorId joined =
          g.add(std::make_unique<Concat>(a.C, b.C, a.H, a.W), {h, hs.back()}, act(a.H, a.C + b.C));
      hs.pop_back();
      h = res_block(name("up", i, "block", j), joined, cfg.ch * cfg.ch_mult[i]);
      if (has_attention(cfg, g.shape(h).H)) h = attn_block(name("up", i, "attn", j), h);
    }
    if (i != 0) {
      const TensorShape s = g.shape(h);
      h = g.add(std::make_unique<Upsample>(layout_, cat("up.", i, ".upsample"), s.C, s.H, s.W, resample), {h},
                act(2 * s.H, s.C));
    }
  }
  DDPM_CHECK(hs.empty(), "every skip tensor is consumed");

  const TensorShape s = g.shape(h);
  h = g.add(std::make_unique<NormSwish>(layout_, "norm_out", s.C, R, R), {h}, s);
  g.set_output(g.add(std::make_unique<ConvNode>(layout_, "conv_out", s.C, cfg.out_ch, R, R, InitKind::kZeroWeight),
                     {h}, act(R, cfg.out_ch)));
}

}  // namespace ddpm
