// The op registry's cases for the diffusion kernels (core/diffusion_ops.h, reached
// through Ops::diffusion()) on the CIFAR10 model's shapes: the process's inputs (uint8
// images to [-1, 1], Gaussian noise), the forward process, both training losses, the
// variational bound's terms and prior, and the ancestral and DDIM steps. On the CPU
// they are the host process that test_diffusion checks against numpy; here they are
// what every other backend is compared with.
#include <algorithm>
#include <memory>

#include "core/diffusion.h"
#include "core/diffusion_ops.h"
#include "op_registry_cases.h"

namespace ddpm::test::cases {
namespace {

DiffusionConfig process(const char* mean, const char* var, const char* loss) {
  DiffusionConfig c;
  c.model_mean_type = mean, c.model_var_type = var, c.loss_type = loss;
  return c;
}

}  // namespace

void add_diffusion_cases(std::vector<OpCase>& cases, Data& data) {
  {
    auto pixels = std::make_shared<std::vector<uint8_t>>(3 * 32 * 32 * 2);
    for (size_t i = 0; i < pixels->size(); ++i) (*pixels)[i] = static_cast<uint8_t>((i * 37) % 256);
    const auto n = static_cast<int64_t>(pixels->size());
    OpCase c;
    c.methods = {"images_to_model"};
    c.shape = "cifar10 batch 2x32x32x3";
    c.tensors = {{"x", zeros(n)}};
    c.forward = [pixels, n](Ops& ops, BackendTensors& t) { ops.diffusion().images_to_model(t["x"], pixels->data(), n); };
    c.outputs = {"x"};
    c.reference = [pixels, n](const HostTensors&) {
      std::vector<double> x(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) x[i] = (*pixels)[i] / 127.5 - 1.0;
      return Results{{"x", x}};
    };
    c.reference_bound = 1e-7;  // within 2^-24 of each value (test_cpu_kernels)
    c.cuda_bound = 0;
    cases.push_back(std::move(c));
  }
  {
    const int N = 3;
    const int64_t per_example = 3 * 32 * 32 + 2;
    OpCase c;
    c.methods = {"fill_normal"};
    c.shape = "3 x (3x32x32 + 2)";
    c.tensors = {{"y", zeros(N * per_example)}};
    c.forward = [=](Ops& ops, BackendTensors& t) {
      ops.diffusion().fill_normal(t["y"], N, per_example, 0xDEADBEEFull, Purpose::kNoise, 5, 777, 1000);
    };
    c.outputs = {"y"};
    c.reference = [=](const HostTensors&) {
      std::vector<float> y(static_cast<size_t>(N * per_example));
      for (int i = 0; i < N; ++i) {
        normal_fill(y.data() + i * per_example, per_example, 0xDEADBEEFull, Purpose::kNoise, 5, 777, 1000 + i);
      }
      return Results{{"y", widen(y)}};
    };
    c.reference_bound = 0;
    c.cuda_bound = 1e-6;  // double log/sin/cos may differ in a last bit (test_gpu_kernels)
    cases.push_back(std::move(c));
  }
  const int N = 4;
  const int64_t D = 3 * 32 * 32;
  auto t = std::make_shared<std::vector<int>>(std::vector<int>{0, 1, 500, 999});
  // Training with L_simple and sampling: the paper's ε-model with σ² = β.
  {
    static const Diffusion d{DiffusionConfig{}};
    auto t_prev = std::make_shared<std::vector<int>>(std::vector<int>{-1, 0, 480, 979});
    OpCase c;
    c.methods = {"q_sample", "training_losses", "p_sample", "ddim_sample"};
    c.shape = "cifar10 batch 4, t 0 1 500 999, eps fixedlarge mse";
    c.tensors = {{"x0", data(N * D)}, {"noise", data(N * D)}, {"out", data(N * D, 1.5f)}, {"xt", zeros(N * D)},
                 {"grad", zeros(N * D)}, {"prev", zeros(N * D)}, {"pred", zeros(N * D)},
                 {"ddim_prev", zeros(N * D)}, {"ddim_pred", zeros(N * D)}};
    c.forward = [=](Ops& ops, BackendTensors& b) {
      DiffusionOps& k = ops.diffusion();
      k.q_sample(d.table(), b["xt"], b["x0"], b["noise"], t->data(), N, D);
      std::vector<double> losses(N);
      k.training_losses(d.table(), losses.data(), b["grad"], b["out"], b["x0"], b["xt"], b["noise"], t->data(), N, D,
                        1.0 / N);
      b.doubles["losses"] = losses;
      k.p_sample(d.table(), b["prev"], b["pred"], b["out"], b["xt"], b["noise"], t->data(), N, D);
      k.ddim_sample(d.table(), b["ddim_prev"], b["ddim_pred"], b["out"], b["xt"], b["noise"], t->data(),
                    t_prev->data(), N, D, 1.0);
    };
    c.outputs = {"xt", "losses", "grad", "prev", "pred", "ddim_prev", "ddim_pred"};
    c.reference_elsewhere = "test_diffusion (the host process against numpy)";
    c.cuda_bound = 1e-6;
    cases.push_back(std::move(c));
  }
  // The variational bound: the kl training loss, the terms with x̂_0 clipped as
  // `ddpm_eval bpd` computes them (t = 0 is the decoder, pixels at -1 and 1 its edge
  // bins), and the prior term, for an x_0-model with σ² = β̃.
  {
    static const Diffusion d{process("xstart", "fixedsmall", "kl")};
    std::vector<float> x0 = data(N * D);
    for (int n = 0; n < N; ++n) x0[n * D] = -1.0f, x0[n * D + 1] = 1.0f;
    OpCase c;
    c.methods = {"training_losses", "vb_terms_bpd", "prior_bpd"};
    c.shape = "cifar10 batch 4, t 0 1 500 999, xstart fixedsmall kl";
    c.tensors = {{"x0", x0}, {"xt", data(N * D)}, {"out", data(N * D, 1.2f)}, {"grad", zeros(N * D)},
                 {"terms_grad", zeros(N * D)}, {"pred", zeros(N * D)}};
    c.forward = [=](Ops& ops, BackendTensors& b) {
      DiffusionOps& k = ops.diffusion();
      std::vector<double> losses(N), terms(N), mse(N), prior(N);
      k.training_losses(d.table(), losses.data(), b["grad"], b["out"], b["x0"], b["xt"], nullptr, t->data(), N, D,
                        1.0 / N);
      k.vb_terms_bpd(d.table(), terms.data(), b["terms_grad"], b["pred"], mse.data(), b["out"], b["x0"], b["xt"],
                     t->data(), N, D, /*clip=*/true, 0.5);
      k.prior_bpd(d.table(), prior.data(), b["x0"], N, D);
      b.doubles["losses"] = losses, b.doubles["terms"] = terms, b.doubles["mse"] = mse, b.doubles["prior"] = prior;
    };
    c.outputs = {"losses", "grad", "terms", "terms_grad", "pred", "mse", "prior"};
    c.reference_elsewhere = "test_diffusion (the host process against numpy)";
    c.cuda_bound = 0;  // the CUDA backend runs the host code through copies
    cases.push_back(std::move(c));
  }
}

}  // namespace ddpm::test::cases
