#include "core/unet.h"

#include <algorithm>

#include "core/common.h"

namespace ddpm {
namespace {
// Arena shared slots of the model level (blocks use 0..3 inside their backward).
enum ModelSlot { kGradA = 4, kGradB = 5, kGradCat = 6 };

bool has_attention(const ModelConfig& cfg, int res) {
  return std::find(cfg.attn_resolutions.begin(), cfg.attn_resolutions.end(), res) != cfg.attn_resolutions.end();
}
std::string name(const char* path, int i, const char* part, int j) { return cat(path, ".", i, ".", part, ".", j); }
}  // namespace

UNet::UNet(const ModelConfig& cfg) : cfg_(cfg), temb_ch_(4 * cfg.ch) {
  cfg_.validate("model config");
  const int L = static_cast<int>(cfg.ch_mult.size());
  const int nrb = cfg.num_res_blocks;
  const float dropout = static_cast<float>(cfg.dropout);
  std::vector<int> in_ch_mult{1};
  in_ch_mult.insert(in_ch_mult.end(), cfg.ch_mult.begin(), cfg.ch_mult.end());
  uint32_t layer_id = 0;

  // Parameters are registered in the order the forward pass uses them, so backward
  // finishes their gradients from the end of the flat buffer towards its start: the
  // gradient all-reduce can send the tail while backward still runs (dist/). Names,
  // not positions, identify them everywhere else.
  dense0_.add(layout_, "temb.dense.0", cfg.ch, temb_ch_, false, InitKind::kWeight);
  dense1_.add(layout_, "temb.dense.1", temb_ch_, temb_ch_, false, InitKind::kWeight);
  conv_in_.add(layout_, "conv_in", cfg.in_channels, cfg.ch, InitKind::kWeight);

  // Down path; the channels of every skip tensor are recorded for the up path.
  std::vector<int> skip_ch{cfg.ch};
  int res = cfg.resolution, block_in = cfg.ch;
  down_.resize(L);
  for (int i = 0; i < L; ++i) {
    Level& lv = down_[i];
    lv.res = res;
    block_in = cfg.ch * in_ch_mult[i];
    const int block_out = cfg.ch * cfg.ch_mult[i];
    for (int j = 0; j < nrb; ++j) {
      lv.blocks.emplace_back(layout_, name("down", i, "block", j), block_in, block_out, temb_ch_, res, res, dropout,
                             layer_id++);
      block_in = block_out;
      if (has_attention(cfg, res)) lv.attns.emplace_back(layout_, name("down", i, "attn", j), block_in, res, res);
      skip_ch.push_back(block_in);
    }
    if (i != L - 1) {
      lv.down = std::make_unique<Downsample>(layout_, cat("down.", i, ".downsample"), block_in, res, res,
                                             cfg.resamp_with_conv);
      res /= 2;
      skip_ch.push_back(block_in);
    }
  }

  mid_block1_ = std::make_unique<ResBlock>(layout_, "mid.block_1", block_in, block_in, temb_ch_, res, res, dropout,
                                           layer_id++);
  mid_attn_ = std::make_unique<AttnBlock>(layout_, "mid.attn_1", block_in, res, res);
  mid_block2_ = std::make_unique<ResBlock>(layout_, "mid.block_2", block_in, block_in, temb_ch_, res, res, dropout,
                                           layer_id++);

  // Up path, deepest level first; up.0 is the full-resolution level.
  up_.resize(L);
  for (int i = L - 1; i >= 0; --i) {
    Level& lv = up_[i];
    lv.res = res;
    const int block_out = cfg.ch * cfg.ch_mult[i];
    for (int j = 0; j <= nrb; ++j) {
      const int skip = skip_ch.back();
      skip_ch.pop_back();
      const int expected = j == nrb ? cfg.ch * in_ch_mult[i] : cfg.ch * cfg.ch_mult[i];
      DDPM_CHECK(skip == expected, "skip channel bookkeeping");
      lv.blocks.emplace_back(layout_, name("up", i, "block", j), block_in + skip, block_out, temb_ch_, res, res,
                             dropout, layer_id++);
      block_in = block_out;
      if (has_attention(cfg, res)) lv.attns.emplace_back(layout_, name("up", i, "attn", j), block_in, res, res);
    }
    if (i != 0) {
      lv.up = std::make_unique<Upsample>(layout_, cat("up.", i, ".upsample"), block_in, res, res,
                                         cfg.resamp_with_conv);
      res *= 2;
    }
  }
  DDPM_CHECK(skip_ch.empty(), "every skip tensor is consumed");
  norm_out_.add(layout_, "norm_out", block_in);
  conv_out_.add(layout_, "conv_out", block_in, cfg.out_ch, InitKind::kZeroWeight);
}

UNet::~UNet() {
  if (ops_) arena_.release(*ops_);
}

int64_t UNet::macs_per_image() const {
  const int R = cfg_.resolution;
  int64_t m = static_cast<int64_t>(cfg_.ch) * temb_ch_ + static_cast<int64_t>(temb_ch_) * temb_ch_;
  m += conv_in_.macs(R, R) + conv_out_.macs(R, R);
  for (const std::vector<Level>* path : {&down_, &up_}) {
    for (const Level& lv : *path) {
      for (const ResBlock& b : lv.blocks) m += b.macs();
      for (const AttnBlock& a : lv.attns) m += a.macs();
      if (lv.down) m += lv.down->macs();
      if (lv.up) m += lv.up->macs();
    }
  }
  return m + mid_block1_->macs() + mid_attn_->macs() + mid_block2_->macs();
}

void UNet::prepare(Ops& ops, int N) {
  if (ops_ == &ops && N_ == N) return;
  DDPM_CHECK(N > 0, "batch must be positive");
  if (ops_) arena_.release(*ops_);
  ops_ = &ops;
  N_ = N;
  const int R = cfg_.resolution;
  conv_in_.build(ops, N, R, R);
  conv_out_.build(ops, N, R, R);
  for (std::vector<Level>* path : {&down_, &up_}) {
    for (Level& lv : *path) {
      for (ResBlock& b : lv.blocks) b.build(ops, N);
      if (lv.down) lv.down->build(ops, N);
      if (lv.up) lv.up->build(ops, N);
    }
  }
  mid_block1_->build(ops, N);
  mid_block2_->build(ops, N);
  arena_.begin_pass();
  plan(arena_, N);
  arena_.allocate(ops);
  plan(arena_, N);
}

void UNet::plan(Arena& arena, int N) {
  arena.begin_pass();
  const int L = static_cast<int>(cfg_.ch_mult.size());
  const int nrb = cfg_.num_res_blocks;
  const int64_t n = N;
  int64_t max_act = 0;
  auto act = [&](int res, int ch) {
    const int64_t size = n * res * res * ch;
    max_act = std::max(max_act, size);
    return arena.take(size);
  };
  for (float** p : {&emb_, &t0_, &a0_, &temb_, &temb_act_, &dtemb_act_, &dtemb_, &da0_}) *p = arena.take(n * temb_ch_);

  skips_.clear();
  auto add_skip = [&](int res, int ch) {
    Skip s;
    s.res = res, s.ch = ch;
    s.act = act(res, ch);
    s.grad = act(res, ch);
    skips_.push_back(s);
  };
  add_skip(cfg_.resolution, cfg_.ch);
  down_block_out_.assign(L, {});
  for (int i = 0; i < L; ++i) {
    Level& lv = down_[i];
    for (int j = 0; j < nrb; ++j) {
      lv.blocks[j].plan(arena, N);
      if (!lv.attns.empty()) {
        down_block_out_[i].push_back(act(lv.res, lv.blocks[j].out_ch()));
        lv.attns[j].plan(arena, N);
      }
      add_skip(lv.res, lv.blocks[j].out_ch());
    }
    if (lv.down) {
      lv.down->plan(arena, N);
      add_skip(lv.res / 2, skips_.back().ch);
    }
  }
  const int mid_res = down_.back().res, mid_ch = skips_.back().ch;
  mid_block1_->plan(arena, N);
  mid_attn_->plan(arena, N);
  mid_block2_->plan(arena, N);
  mid_a_ = act(mid_res, mid_ch);
  mid_b_ = act(mid_res, mid_ch);
  mid_c_ = act(mid_res, mid_ch);

  up_cat_.assign(L, {});
  up_block_out_.assign(L, {});
  up_attn_out_.assign(L, {});
  up_resampled_.assign(L, nullptr);
  int64_t max_cat = 0;
  for (int i = 0; i < L; ++i) {
    Level& lv = up_[i];
    for (int j = 0; j <= nrb; ++j) {
      ResBlock& b = lv.blocks[j];
      b.plan(arena, N);
      const int64_t cat_size = n * lv.res * lv.res * b.in_ch();
      max_cat = std::max(max_cat, cat_size);
      up_cat_[i].push_back(arena.take(cat_size));
      up_block_out_[i].push_back(act(lv.res, b.out_ch()));
      if (!lv.attns.empty()) {
        lv.attns[j].plan(arena, N);
        up_attn_out_[i].push_back(act(lv.res, b.out_ch()));
      }
    }
    if (lv.up) {
      lv.up->plan(arena, N);
      up_resampled_[i] = act(2 * lv.res, lv.blocks.back().out_ch());
    }
  }
  head_h_ = act(cfg_.resolution, norm_out_.ch);
  head_mean_ = arena.take(n * kGroups);
  head_rstd_ = arena.take(n * kGroups);
  grad_a_ = arena.shared(kGradA, max_act);
  grad_b_ = arena.shared(kGradB, max_act);
  grad_cat_ = arena.shared(kGradCat, max_cat);
}

void UNet::forward(const Pass& ps, float* eps, const float* x, const float* t) {
  DDPM_CHECK(ps.N == N_ && ps.ops == ops_, "UNet::prepare() was not called for this batch");
  Ops& ops = *ps.ops;
  const int N = ps.N, L = static_cast<int>(cfg_.ch_mult.size()), nrb = cfg_.num_res_blocks;
  x_in_ = x;

  ops.timestep_embedding(emb_, t, N, cfg_.ch);
  ops.linear_forward(t0_, false, emb_, ps.p(dense0_.w), ps.p(dense0_.b), N, cfg_.ch, temb_ch_);
  ops.swish_forward(a0_, t0_, static_cast<int64_t>(N) * temb_ch_);
  ops.linear_forward(temb_, false, a0_, ps.p(dense1_.w), ps.p(dense1_.b), N, temb_ch_, temb_ch_);
  ops.swish_forward(temb_act_, temb_, static_cast<int64_t>(N) * temb_ch_);

  conv_in_.op->forward(skips_[0].act, false, x, ps.p(conv_in_.w), ps.p(conv_in_.b), ps.version);
  size_t k = 0;
  for (int i = 0; i < L; ++i) {
    Level& lv = down_[i];
    for (int j = 0; j < nrb; ++j) {
      const float* in = skips_[k].act;
      float* out = skips_[k + 1].act;
      if (lv.attns.empty()) {
        lv.blocks[j].forward(ps, out, in, temb_act_);
      } else {
        lv.blocks[j].forward(ps, down_block_out_[i][j], in, temb_act_);
        lv.attns[j].forward(ps, out, down_block_out_[i][j]);
      }
      ++k;
    }
    if (lv.down) {
      lv.down->forward(ps, skips_[k + 1].act, skips_[k].act);
      ++k;
    }
  }
  mid_block1_->forward(ps, mid_a_, skips_[k].act, temb_act_);
  mid_attn_->forward(ps, mid_b_, mid_a_);
  mid_block2_->forward(ps, mid_c_, mid_b_, temb_act_);

  const float* cur = mid_c_;
  int cur_ch = skips_.back().ch;
  size_t next_skip = skips_.size();
  for (int i = L - 1; i >= 0; --i) {
    Level& lv = up_[i];
    const int64_t M = static_cast<int64_t>(N) * lv.res * lv.res;
    for (int j = 0; j <= nrb; ++j) {
      const Skip& s = skips_[--next_skip];
      ops.concat_channels(up_cat_[i][j], cur, s.act, M, cur_ch, s.ch);
      lv.blocks[j].forward(ps, up_block_out_[i][j], up_cat_[i][j], temb_act_);
      cur = up_block_out_[i][j];
      if (!lv.attns.empty()) {
        lv.attns[j].forward(ps, up_attn_out_[i][j], cur);
        cur = up_attn_out_[i][j];
      }
      cur_ch = lv.blocks[j].out_ch();
    }
    if (lv.up) {
      lv.up->forward(ps, up_resampled_[i], cur);
      cur = up_resampled_[i];
    }
  }
  head_in_ = cur;
  const int R = cfg_.resolution;
  ops.groupnorm_forward(head_h_, head_mean_, head_rstd_, cur, ps.p(norm_out_.w), ps.p(norm_out_.b), {N, R * R,
                        norm_out_.ch, kGroups, Activation::kSwish});
  conv_out_.op->forward(eps, false, head_h_, ps.p(conv_out_.w), ps.p(conv_out_.b), ps.version);
}

void UNet::backward(const Pass& ps, const float* d_eps, const GradReadyFn& ready) {
  DDPM_CHECK(ps.N == N_ && ps.ops == ops_, "UNet::prepare() was not called for this batch");
  Ops& ops = *ps.ops;
  const int N = ps.N, L = static_cast<int>(cfg_.ch_mult.size()), nrb = cfg_.num_res_blocks, R = cfg_.resolution;
  ops.zero(dtemb_act_, static_cast<int64_t>(N) * temb_ch_);
  auto done = [&](int64_t first_param) {
    if (ready && first_param >= 0) ready(first_param);
  };

  float* grad = grad_a_;   // gradient of the current tensor of the chain
  float* other = grad_b_;  // where the next one goes
  conv_out_.op->backward(other, false, ps.g(conv_out_.w), ps.g(conv_out_.b), d_eps, head_h_, ps.p(conv_out_.w),
                         ps.version);
  ops.groupnorm_backward(grad, false, ps.g(norm_out_.w), ps.g(norm_out_.b), other, head_in_, head_mean_, head_rstd_,
                         ps.p(norm_out_.w), ps.p(norm_out_.b), {N, R * R, norm_out_.ch, kGroups, Activation::kSwish});
  done(norm_out_.w);

  // Up path in reverse: level 0 first, blocks last to first.
  size_t popped = skips_.size() - static_cast<size_t>(L) * (nrb + 1);  // skip index of the last pop
  for (int i = 0; i < L; ++i) {
    Level& lv = up_[i];
    const int64_t M = static_cast<int64_t>(N) * lv.res * lv.res;
    if (lv.up) {
      lv.up->backward(ps, other, grad);
      std::swap(grad, other);
      done(lv.up->first_param());
    }
    for (int j = nrb; j >= 0; --j) {
      if (!lv.attns.empty()) {
        lv.attns[j].backward(ps, other, false, grad);
        std::swap(grad, other);
        done(lv.attns[j].first_param());
      }
      ResBlock& b = lv.blocks[j];
      b.backward(ps, grad_cat_, false, dtemb_act_, grad);
      done(b.first_param());
      const Skip& s = skips_[popped++];
      ops.split_channels(other, s.grad, grad_cat_, M, b.in_ch() - s.ch, s.ch);
      std::swap(grad, other);
    }
  }
  DDPM_CHECK(popped == skips_.size(), "skip bookkeeping in backward");

  mid_block2_->backward(ps, other, false, dtemb_act_, grad);
  std::swap(grad, other);
  done(mid_block2_->first_param());
  mid_attn_->backward(ps, other, false, grad);
  std::swap(grad, other);
  done(mid_attn_->first_param());
  size_t k = skips_.size() - 1;
  mid_block1_->backward(ps, skips_[k].grad, true, dtemb_act_, grad);
  done(mid_block1_->first_param());

  // Down path in reverse: every skip's gradient is complete (its up-path consumer ran
  // first) when its producer's backward runs, which accumulates into its input's.
  for (int i = L - 1; i >= 0; --i) {
    Level& lv = down_[i];
    if (lv.down) {
      lv.down->backward(ps, skips_[k - 1].grad, true, skips_[k].grad);
      --k;
      done(lv.down->first_param());
    }
    for (int j = nrb - 1; j >= 0; --j) {
      const float* dout = skips_[k].grad;
      if (!lv.attns.empty()) {
        lv.attns[j].backward(ps, other, false, dout);
        dout = other;
        done(lv.attns[j].first_param());
      }
      lv.blocks[j].backward(ps, skips_[k - 1].grad, true, dtemb_act_, dout);
      --k;
      done(lv.blocks[j].first_param());
    }
  }
  DDPM_CHECK(k == 0, "skip bookkeeping in the down path");
  conv_in_.op->backward(nullptr, false, ps.g(conv_in_.w), ps.g(conv_in_.b), skips_[0].grad, x_in_, ps.p(conv_in_.w),
                        ps.version);

  const int64_t nt = static_cast<int64_t>(N) * temb_ch_;
  ops.swish_backward(dtemb_, dtemb_act_, temb_, nt);
  ops.linear_backward(da0_, false, ps.g(dense1_.w), ps.g(dense1_.b), dtemb_, a0_, ps.p(dense1_.w), N, temb_ch_,
                      temb_ch_);
  ops.swish_backward(dtemb_, da0_, t0_, nt);
  ops.linear_backward(nullptr, false, ps.g(dense0_.w), ps.g(dense0_.b), dtemb_, emb_, ps.p(dense0_.w), N, cfg_.ch,
                      temb_ch_);
  done(0);
}

}  // namespace ddpm
