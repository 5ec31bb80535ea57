#include "eval/inception.h"

#include <memory>

#include "core/common.h"
#include "core/h5.h"
#include "io/weights_io.h"
#include "eval/inception_nodes.h"

namespace ddpm::eval {
namespace {

using TensorId = Graph::TensorId;

// A convolution's kernel, stride and padding (PyTorch's kernel_size, stride, padding).
ConvSpec kernel(int kh, int kw, int stride = 1, int pad_h = 0, int pad_w = 0) {
  return ConvSpec{}.with_kernel(kh, kw, stride, pad_h, pad_w);
}
const ConvSpec k1x1 = kernel(1, 1), k3x3 = kernel(3, 3), k3x3_stride2 = kernel(3, 3, 2);
const ConvSpec k3x3_same = kernel(3, 3, 1, 1, 1), k5x5_same = kernel(5, 5, 1, 2, 2);
const ConvSpec k1x7 = kernel(1, 7, 1, 0, 3), k7x1 = kernel(7, 1, 1, 3, 0);
const ConvSpec k1x3 = kernel(1, 3, 1, 0, 1), k3x1 = kernel(3, 1, 1, 1, 0);

// Adds the network's nodes to a graph, registering their parameters in forward order;
// one method per layer and per block kind of pytorch-fid's inception.py.
class Builder {
 public:
  Builder(ParamLayout& layout, Graph& graph) : layout_(layout), g_(graph) {}

  // pytorch-fid's BasicConv2d `name` (BatchNorm folded) on x.
  TensorId unit(const std::string& name, TensorId x, int out_ch, const ConvSpec& geometry) {
    const TensorShape s = g_.shape(x);
    auto node = std::make_unique<ConvReluNode>(layout_, name, geometry, s.C, out_ch, s.H, s.W);
    const TensorShape out = node->output_shape();
    return g_.add(std::move(node), {x}, out);
  }

  TensorId pool(PoolKind kind, TensorId x, int stride, int pad) {
    const TensorShape s = g_.shape(x);
    PoolSpec spec;
    spec.H = s.H, spec.W = s.W, spec.C = s.C, spec.K = 3, spec.stride = stride, spec.pad = pad;
    auto node = std::make_unique<PoolNode>(kind, spec);
    const TensorShape out = node->output_shape();
    return g_.add(std::move(node), {x}, out);
  }
  TensorId max_pool_stride2(TensorId x) { return pool(PoolKind::kMax, x, 2, 0); }
  // The pool branch's 3x3 stride-1 pool (TF's average pool counts only in-bounds taps).
  TensorId pool_same(PoolKind kind, TensorId x) { return pool(kind, x, 1, 1); }

  TensorId concat(const std::vector<TensorId>& parts) {
    std::vector<int> channels;
    for (TensorId t : parts) channels.push_back(g_.shape(t).C);
    const TensorShape s = g_.shape(parts[0]);
    auto node = std::make_unique<ConcatChannelsNode>(channels, s.H, s.W);
    const int C = node->out_channels();
    return g_.add(std::move(node), parts, {s.H, s.W, C});
  }

  // FIDInceptionA (Mixed_5b..5d, 35x35): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avg pool-1x1.
  TensorId block_a(const std::string& name, TensorId x, int pool_features) {
    const TensorId b1 = unit(name + ".branch1x1", x, 64, k1x1);
    TensorId b5 = unit(name + ".branch5x5_1", x, 48, k1x1);
    b5 = unit(name + ".branch5x5_2", b5, 64, k5x5_same);
    TensorId b3 = unit(name + ".branch3x3dbl_1", x, 64, k1x1);
    b3 = unit(name + ".branch3x3dbl_2", b3, 96, k3x3_same);
    b3 = unit(name + ".branch3x3dbl_3", b3, 96, k3x3_same);
    const TensorId bp = unit(name + ".branch_pool", pool_same(PoolKind::kAverage, x), pool_features, k1x1);
    return concat({b1, b5, b3, bp});
  }

  // InceptionB (Mixed_6a, 35x35 -> 17x17): 3x3/2 | 1x1-3x3-3x3/2 | max pool/2.
  TensorId block_b(const std::string& name, TensorId x) {
    const TensorId b3 = unit(name + ".branch3x3", x, 384, k3x3_stride2);
    TensorId d = unit(name + ".branch3x3dbl_1", x, 64, k1x1);
    d = unit(name + ".branch3x3dbl_2", d, 96, k3x3_same);
    d = unit(name + ".branch3x3dbl_3", d, 96, k3x3_stride2);
    return concat({b3, d, max_pool_stride2(x)});
  }

  // FIDInceptionC (Mixed_6b..6e, 17x17): 1x1 | 1x1-1x7-7x1 | 1x1-7x1-1x7-7x1-1x7 |
  // avg pool-1x1. *branch1x1 (when asked) is the first branch's tensor.
  TensorId block_c(const std::string& name, TensorId x, int c7, TensorId* branch1x1 = nullptr) {
    const TensorId b1 = unit(name + ".branch1x1", x, 192, k1x1);
    if (branch1x1) *branch1x1 = b1;
    TensorId b7 = unit(name + ".branch7x7_1", x, c7, k1x1);
    b7 = unit(name + ".branch7x7_2", b7, c7, k1x7);
    b7 = unit(name + ".branch7x7_3", b7, 192, k7x1);
    TensorId d = unit(name + ".branch7x7dbl_1", x, c7, k1x1);
    d = unit(name + ".branch7x7dbl_2", d, c7, k7x1);
    d = unit(name + ".branch7x7dbl_3", d, c7, k1x7);
    d = unit(name + ".branch7x7dbl_4", d, c7, k7x1);
    d = unit(name + ".branch7x7dbl_5", d, 192, k1x7);
    const TensorId bp = unit(name + ".branch_pool", pool_same(PoolKind::kAverage, x), 192, k1x1);
    return concat({b1, b7, d, bp});
  }

  // InceptionD (Mixed_7a, 17x17 -> 8x8): 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | max pool/2.
  TensorId block_d(const std::string& name, TensorId x) {
    TensorId b3 = unit(name + ".branch3x3_1", x, 192, k1x1);
    b3 = unit(name + ".branch3x3_2", b3, 320, k3x3_stride2);
    TensorId b7 = unit(name + ".branch7x7x3_1", x, 192, k1x1);
    b7 = unit(name + ".branch7x7x3_2", b7, 192, k1x7);
    b7 = unit(name + ".branch7x7x3_3", b7, 192, k7x1);
    b7 = unit(name + ".branch7x7x3_4", b7, 192, k3x3_stride2);
    return concat({b3, b7, max_pool_stride2(x)});
  }

  // FIDInceptionE_1 / E_2 (Mixed_7b, 7c, 8x8): 1x1 | 1x1-(1x3 | 3x1) | 1x1-3x3-(1x3 |
  // 3x1) | pool-1x1, the pool an average in E_1 and a max in E_2 (as the TF graph has it).
  TensorId block_e(const std::string& name, TensorId x, PoolKind pool_branch) {
    const TensorId b1 = unit(name + ".branch1x1", x, 320, k1x1);
    const TensorId s = unit(name + ".branch3x3_1", x, 384, k1x1);
    const TensorId s_a = unit(name + ".branch3x3_2a", s, 384, k1x3);
    const TensorId s_b = unit(name + ".branch3x3_2b", s, 384, k3x1);
    TensorId d = unit(name + ".branch3x3dbl_1", x, 448, k1x1);
    d = unit(name + ".branch3x3dbl_2", d, 384, k3x3_same);
    const TensorId d_a = unit(name + ".branch3x3dbl_3a", d, 384, k1x3);
    const TensorId d_b = unit(name + ".branch3x3dbl_3b", d, 384, k3x1);
    const TensorId bp = unit(name + ".branch_pool", pool_same(pool_branch, x), 192, k1x1);
    return concat({b1, s_a, s_b, d_a, d_b, bp});
  }

 private:
  ParamLayout& layout_;
  Graph& g_;
};

}  // namespace

// The whole topology, once, in the order forward runs it (pytorch-fid's
// fid_inception_v3 with torchvision's Inception3 around it).
FidInception::FidInception() {
  Graph& g = graph_;
  Builder b(layout_, g);
  TensorId x = g.input(TensorShape{kInputSize, kInputSize, 3});
  x = b.unit("Conv2d_1a_3x3", x, 32, k3x3_stride2);  // 149x149
  x = b.unit("Conv2d_2a_3x3", x, 32, k3x3);          // 147x147
  x = b.unit("Conv2d_2b_3x3", x, 64, k3x3_same);
  x = b.max_pool_stride2(x);                          // 73x73
  x = b.unit("Conv2d_3b_1x1", x, 80, k1x1);
  x = b.unit("Conv2d_4a_3x3", x, 192, k3x3);         // 71x71
  x = b.max_pool_stride2(x);                          // 35x35
  x = b.block_a("Mixed_5b", x, 32);
  x = b.block_a("Mixed_5c", x, 64);
  x = b.block_a("Mixed_5d", x, 64);
  x = b.block_b("Mixed_6a", x);  // 17x17
  x = b.block_c("Mixed_6b", x, 128);
  x = b.block_c("Mixed_6c", x, 160);
  TensorId mixed_6d_branch1x1 = -1;
  x = b.block_c("Mixed_6d", x, 160, &mixed_6d_branch1x1);
  x = b.block_c("Mixed_6e", x, 192);
  x = b.block_d("Mixed_7a", x);  // 8x8
  x = b.block_e("Mixed_7b", x, PoolKind::kAverage);
  x = b.block_e("Mixed_7c", x, PoolKind::kMax);
  const TensorShape s = g.shape(x);
  DDPM_CHECK(s.C == kFeatures && s.H == 8 && s.W == 8, "Mixed_7c gives ", s.H, "x", s.W, "x", s.C);
  const TensorId pool3 = g.add(std::make_unique<GlobalAvgPoolNode>(s.C, s.H, s.W), {x}, TensorShape{1, 1, kFeatures});
  const TensorId logits = g.add(std::make_unique<DenseNode>(layout_, "fc", kFeatures, kClasses), {pool3},
                                TensorShape{1, 1, kClasses});
  const TensorShape m = g.shape(mixed_6d_branch1x1);
  DDPM_CHECK(m.H == kSpatialSize && m.W == kSpatialSize, "Mixed_6d is ", m.H, "x", m.W);
  const TensorId spatial = g.add(std::make_unique<FirstChannelsNode>(kSpatialChannels, m.C, m.H, m.W),
                                 {mixed_6d_branch1x1}, TensorShape{m.H, m.W, kSpatialChannels});
  g.set_outputs({pool3, logits, spatial});
  g.share_forward_memory();  // evaluation batches are large: 56 MB an image if every tensor were kept
}

void FidInception::forward(const Pass& ps, const InceptionOutputs& out, const float* images) {
  DDPM_CHECK(out.pool3 && out.logits && out.spatial, "FidInception::forward needs every output buffer");
  const float* inputs[] = {images};
  float* const outputs[] = {out.pool3, out.logits, out.spatial};
  graph_.forward(ps, inputs, outputs);
}

std::string InceptionWeightsSource::describe() const {
  if (published()) return "published Inception weights";
  return sha256 == "unknown" ? "Inception weights of unknown origin" : cat("other Inception weights (sha256 ", sha256.substr(0, 16), "...)");
}

InceptionWeightsSource read_inception_weights(const std::string& path, const ParamLayout& layout, float* params) {
  const h5::File f =
      h5::File::open_read_checksummed(path, "convert pytorch-fid's weights again with tools/convert_inception.py");
  const std::string format = f.has_attr("/", "format") ? f.read_attr_str("/", "format") : "";
  if (format != kInceptionWeightsFormat) {
    f.fail(cat("not an Inception weights file (format '", format, "', not '", kInceptionWeightsFormat,
               "': tools/convert_inception.py writes them from pytorch-fid's pt_inception-2015-12-05-6726825d.pth)"));
  }
  if (!f.has_attr("/", "format_version") || f.read_attr_i64("/", "format_version") != kInceptionWeightsFormatVersion) {
    f.fail(cat("unsupported format_version (this build reads version ", kInceptionWeightsFormatVersion, ")"));
  }
  read_param_group(f, "params", layout, params);
  InceptionWeightsSource source;
  if (f.has_attr("/", "source_sha256")) source.sha256 = f.read_attr_str("/", "source_sha256");
  const bool hex = source.sha256.size() == 64 && source.sha256.find_first_not_of("0123456789abcdef") == std::string::npos;
  if (!hex && source.sha256 != "unknown") f.fail(cat("source_sha256 is not a SHA-256 digest"));
  return source;
}

}  // namespace ddpm::eval
