// FID and IS of sets of images (ddpm_eval fid, is): images through the Inception's input
// pipeline (a resize mode) and network in batches on a backend, pool_3 features into
// streamed float64 statistics, logits kept for the Inception Score.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/buffer.h"
#include "eval/frechet.h"
#include "eval/image_set.h"
#include "eval/inception.h"
#include "eval/inception_input.h"
#include "eval/inception_score.h"

namespace ddpm::eval {

// Where the Inception weights are: `given` if not empty, else $DDPM_INCEPTION, else
// ~/.cache/ddpm/inception-2015-12-05.h5. InputError saying how to get them when the file
// is not there; `option` names where a user gives the path (--inception,
// train.fid_inception).
std::string find_inception_weights(const std::string& given, const std::string& option);

// What a run keeps.
struct FeatureRequest {
  bool pool3_stats = true;     // mean and covariance of pool_3 (needs two images or more)
  bool logits = false;         // [N, 1008] pool_3 · Wᵀ without the classifier's bias (IS)
  bool pool3_rows = false;     // [N, 2048] (precision and recall)
  bool spatial_stats = false;  // statistics of the [N, 17·17·7] sFID features, NHWC order
  // Called after each batch with (images done, images in all) in place of the progress
  // line on stderr (training: the watchdog's beat).
  std::function<void(int64_t, int64_t)> progress;
};

struct FeatureRun {
  FeatureStats pool3;          // mean and covariance of the pool_3 features
  FeatureStats spatial;        // of the sFID features, when asked for
  FeatureMatrix pool3_rows;    // when asked for
  FeatureMatrix logits;        // when asked for
  int64_t images = 0;
};

class InceptionEvaluator {
 public:
  InceptionEvaluator(Ops& ops, const std::string& weights_path, InceptionResize resize, int batch);
  // The first `num` images of the set (0: all); progress on stderr under `label`. The
  // statistics carry this evaluator's provenance.
  FeatureRun run(ImageSet& images, int64_t num, const FeatureRequest& request, const std::string& label);

  const InceptionWeightsSource& weights_source() const { return weights_source_; }
  // What features of `images` images made here are: the resize and the weights.
  StatsProvenance provenance(int64_t images = 0) const;
  // For every printed result: "resize tf, published Inception weights", or the other
  // weights' digest, so that a number from other weights cannot pass for a paper's.
  std::string describe() const;

 private:
  Ops& ops_;
  InceptionResize resize_;
  int batch_;
  FidInception net_;
  ParamBuffer weights_;
  InceptionWeightsSource weights_source_;
  Buffer input_, pool3_, logits_, spatial_;
  // The classifier's bias [1008], taken off the logits: improved-gan's Inception Score
  // and guided-diffusion's evaluator take the softmax of pool_3 times its matrix alone.
  std::vector<float> classifier_bias_;
};

// The statistics of a FID operand: a stats .npz (mu, sigma) is read as it is and its
// provenance checked against the evaluator's (check_provenance; its note on stderr),
// anything else is run through the evaluator.
FeatureStats fid_operand_stats(InceptionEvaluator& evaluator, const std::string& path, int64_t num);

}  // namespace ddpm::eval
