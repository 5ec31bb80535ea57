#include "eval/model_outputs.h"

#include <algorithm>

#include "core/buffer.h"
#include "core/common.h"
#include "core/ops.h"
#include "core/unet.h"
#include "io/model_source.h"

namespace ddpm::eval {

std::vector<float> model_outputs(Ops& ops, const ModelSource& source, const std::vector<float>& x,
                                 const std::vector<int64_t>& t, int64_t batch) {
  const ModelConfig& model = source.config.model;
  const int R = model.resolution, C = model.in_channels;
  const auto N = static_cast<int64_t>(t.size());
  const int64_t in_img = model.values_per_image(), out_img = int64_t{model.out_ch} * R * R;
  DDPM_CHECK(static_cast<int64_t>(x.size()) == N * in_img, "model_outputs: ", x.size(), " inputs for ", N, " images");
  UNet net(model);
  ParamBuffer weights(ops, net.layout().size());
  weights.load(source.weights.get());
  std::vector<float> out(static_cast<size_t>(N * out_img));
  // Sized for the largest pass, once; the last (smaller) one uses their front.
  const int64_t most = std::max<int64_t>(1, std::min(batch, N));  // N may be 0
  const Buffer x_nchw(ops, most * in_img), x_nhwc(ops, most * in_img);
  const Buffer out_nhwc(ops, most * out_img), out_nchw(ops, most * out_img);
  for (int64_t start = 0; start < N; start += batch) {
    const int n = static_cast<int>(std::min(batch, N - start));
    net.prepare(ops, n, PlanMode::kForwardOnly);
    std::vector<float> steps(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) steps[i] = static_cast<float>(t[static_cast<size_t>(start + i)]);
    ops.upload(x_nchw.get(), x.data() + start * in_img, n * in_img);
    ops.nchw_to_nhwc(x_nhwc.get(), x_nchw.get(), n, C, R, R);
    Pass ps;
    ps.ops = &ops;
    ps.params = weights.get();
    ps.version = weights.version();
    ps.N = n;
    net.forward(ps, out_nhwc.get(), x_nhwc.get(), steps.data());
    ops.nhwc_to_nchw(out_nchw.get(), out_nhwc.get(), n, model.out_ch, R, R);
    ops.download(out.data() + start * out_img, out_nchw.get(), n * out_img);
  }
  return out;
}

}  // namespace ddpm::eval
