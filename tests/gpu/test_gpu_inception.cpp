// The evaluation's Inception network (src/eval/inception.h) on the GPU against the CPU:
// pool_3, the logits and the sFID map of the same weights and images, in each precision.
// The weights are He-scaled (ReLU keeps activations of order one without BatchNorm
// statistics); test_inception checks the CPU against PyTorch.
#define BOOST_TEST_MODULE gpu_inception
#include <cmath>

#include "eval/inception.h"
#include "gpu_test.h"

using namespace ddpm;
using namespace ddpm::eval;
using namespace ddpm::gputest;

namespace {

std::vector<float> he_scaled_weights(const ParamLayout& layout) {
  std::vector<float> p(static_cast<size_t>(layout.size()), 0.0f);
  uint32_t stream = 1000;
  for (const ParamInfo& info : layout.params()) {
    const bool weight = info.shape.size() >= 2;
    const float limit = weight ? std::sqrt(6.0f * info.shape[0] / info.numel) : 0.05f;  // 6 / fan_in
    const std::vector<float> v = random(info.numel, ++stream, limit);
    std::copy(v.begin(), v.end(), p.begin() + info.offset);
  }
  return p;
}

std::vector<std::vector<float>> run(Ops& ops, const std::vector<float>& weights, const std::vector<float>& images,
                                    int N) {
  FidInception net;
  ParamBuffer params(ops, net.layout().size());
  params.load(weights.data());
  Buffer x(ops, images), pool3(ops, N * FidInception::kFeatures), logits(ops, N * FidInception::kClasses);
  const int S = FidInception::kSpatialSize;
  Buffer spatial(ops, int64_t{N} * S * S * FidInception::kSpatialChannels);
  net.prepare(ops, N);
  Pass ps;
  ps.ops = &ops, ps.params = params.get(), ps.version = params.version(), ps.N = N;
  net.forward(ps, {pool3.get(), logits.get(), spatial.get()}, x.get());
  return {pool3.host(), logits.host(), spatial.host()};
}

}  // namespace

BOOST_AUTO_TEST_CASE(inception_outputs_match_cpu_in_every_precision) {
  const int N = 2, R = FidInception::kInputSize;
  const FidInception layout_only;
  const std::vector<float> weights = he_scaled_weights(layout_only.layout());
  const std::vector<float> images = random(int64_t{N} * R * R * 3, 701);
  const auto want = run(cpu(), weights, images, N);
  const char* names[] = {"pool3", "logits", "spatial"};
  for (const std::string& prec : precisions()) {
    const auto got = run(gpu(prec), weights, images, N);
    for (int i = 0; i < 3; ++i) {
      const double err = rel_error(got[i], want[i]);
      BOOST_TEST_MESSAGE(prec << " " << names[i] << ": relative error " << err);
      BOOST_TEST_INFO(prec << " " << names[i]);
      BOOST_TEST(err <= net_bound(prec));
    }
  }
}

DDPM_GPU_TEST_MAIN()
