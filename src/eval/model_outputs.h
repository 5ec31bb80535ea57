// The U-Net's raw output for given inputs (ddpm_eval eps: checking a converted
// checkpoint against PyTorch): no diffusion, no sampling, dropout off.
#pragma once

#include <cstdint>
#include <vector>

namespace ddpm {
class Ops;
struct ModelSource;
}  // namespace ddpm

namespace ddpm::eval {

// The model's output [N, out_ch, R, R] (NCHW, host) for x [N, in_channels, R, R] (NCHW,
// host) at timesteps t [N], `batch` images per forward pass on `ops`.
std::vector<float> model_outputs(Ops& ops, const ModelSource& source, const std::vector<float>& x,
                                 const std::vector<int64_t>& t, int64_t batch);

}  // namespace ddpm::eval
