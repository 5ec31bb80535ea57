// The Inception network of the evaluation (FID, IS, sFID, precision/recall): the
// 2015-12-05 TF Inception graph as pytorch-fid ports it (FIDInceptionA/C/E_1/E_2 on
// torchvision's Inception v3 layout, 1008 classes, no auxiliary head), described once in
// inception.cpp as a forward-only graph of nodes (core/graph.h, eval/inception_nodes.h).
// Its parameters carry pytorch-fid's state_dict names with each BatchNorm folded into
// its convolution (`Mixed_6d.branch1x1.conv.weight` and `.conv.bias`, `fc.weight`,
// `fc.bias`), as tools/convert_inception.py writes them. Activations are NHWC.
#pragma once

#include <string>

#include "core/graph.h"
#include "core/params.h"

namespace ddpm::eval {

// What one forward pass gives, all backend memory.
struct InceptionOutputs {
  float* pool3 = nullptr;    // [N, 2048]: the final average pool, FID's features
  float* logits = nullptr;   // [N, 1008]: the classifier, IS's softmax input
  float* spatial = nullptr;  // [N, 17, 17, 7]: Mixed_6d.branch1x1's first channels, sFID's
};

class FidInception {
 public:
  static constexpr int kInputSize = 299;      // images [N, 299, 299, 3] in [-1, 1]
  static constexpr int kFeatures = 2048;      // pool_3
  static constexpr int kClasses = 1008;       // the TF graph's classifier
  static constexpr int kSpatialSize = 17;     // the Mixed_6 blocks' resolution
  static constexpr int kSpatialChannels = 7;  // as the sFID reference code keeps

  FidInception();
  FidInception(const FidInception&) = delete;
  FidInception& operator=(const FidInception&) = delete;

  const ParamLayout& layout() const { return layout_; }
  int64_t macs_per_image() const { return graph_.macs_per_image(); }
  // Builds the primitives and plans the activations for backend `ops` and batch N
  // (forward only); cheap when nothing changed. The Ops must outlive the network.
  void prepare(Ops& ops, int N) { graph_.prepare(ops, N, PlanMode::kForwardOnly); }
  int batch() const { return graph_.batch(); }
  int64_t activation_floats() const { return graph_.arena_floats(); }

  // out from images [N, 299, 299, 3] (NHWC, scaled to [-1, 1]), with the weights at
  // ps.params (this layout, backend memory).
  void forward(const Pass& ps, const InceptionOutputs& out, const float* images);

 private:
  ParamLayout layout_;
  Graph graph_;
};

constexpr const char* kInceptionWeightsFormat = "ddpm-inception-weights";
constexpr int64_t kInceptionWeightsFormatVersion = 1;

// pytorch-fid's published weights (its fid_weights release, 95,628,359 bytes): the file
// whose numbers papers report, as tools/convert_inception.py records its SHA-256.
constexpr const char* kPublishedInceptionFile = "pt_inception-2015-12-05-6726825d.pth";
constexpr const char* kPublishedInceptionSha256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2";

// Where a weights file came from: the SHA-256 of the .pth it was converted from, as the
// converter recorded it ("unknown" when it did not).
struct InceptionWeightsSource {
  std::string sha256 = "unknown";
  bool published() const { return sha256 == kPublishedInceptionSha256; }
  // "published Inception weights" or "other Inception weights (sha256 1a2b3c4d...)".
  std::string describe() const;
};

// Reads an Inception weights file (HDF5 from tools/convert_inception.py: root attribute
// format, group `params` with every tensor of `layout`, float32, PyTorch shapes) into
// params (host, layout.size() floats). InputError naming the file on any problem.
InceptionWeightsSource read_inception_weights(const std::string& path, const ParamLayout& layout, float* params);

}  // namespace ddpm::eval
