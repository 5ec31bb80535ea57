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
  bool logits = false;         // [N, 1008] (IS)
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
  // The first `num` images of the set (0: all); progress on stderr under `label`.
  FeatureRun run(ImageSet& images, int64_t num, const FeatureRequest& request, const std::string& label);
  // The classifier's bias [1008]: guided-diffusion's evaluator takes its softmax of
  // pool_3 times the classifier's matrix alone, the logits less this.
  const std::vector<float>& classifier_bias() const { return classifier_bias_; }

 private:
  Ops& ops_;
  InceptionResize resize_;
  int batch_;
  FidInception net_;
  ParamBuffer weights_;
  Buffer input_, pool3_, logits_, spatial_;
  std::vector<float> classifier_bias_;
};

// The statistics of a FID operand: a stats .npz (mu, sigma) is read as it is, anything
// else is run through the evaluator.
FeatureStats fid_operand_stats(InceptionEvaluator& evaluator, const std::string& path, int64_t num);

}  // namespace ddpm::eval
