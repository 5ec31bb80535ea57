// Default implementations of the Ops methods that run host code: the diffusion process
// (core/diffusion.h) and the counter-based noise, on backend memory. Host-memory
// backends use the buffers directly; others go through host copies (slow but exact),
// until they override the method with a kernel.
#include "core/ops.h"

#include <vector>

#include "core/common.h"
#include "core/diffusion.h"

namespace ddpm {
namespace {

// A host view of backend memory: the buffer itself on host-memory backends, else a
// host copy that is downloaded on request and uploaded back when written.
class HostView {
 public:
  HostView(Ops& ops, const float* p, int64_t n, bool read) : ops_(ops), device_(const_cast<float*>(p)), n_(n) {
    if (p == nullptr || ops.host_memory()) {
      host_ = device_;
      return;
    }
    copy_.resize(static_cast<size_t>(n));
    if (read) ops.download(copy_.data(), p, n);
    host_ = copy_.data();
  }
  float* get() { return host_; }
  void write_back() {
    if (host_ != device_ && device_ != nullptr) ops_.upload(device_, host_, n_);
  }

 private:
  Ops& ops_;
  float* device_;
  float* host_;
  int64_t n_;
  std::vector<float> copy_;
};

}  // namespace

void GroupNormSpec::check() const {
  DDPM_CHECK(G > 0 && C % G == 0, "GroupNorm: ", C, " channels in ", G, " groups");
}

void Ops::fill_normal(float* out, int N, int64_t per_example, uint64_t seed, Purpose purpose, uint32_t sub_id,
                      uint32_t step, uint32_t first_index) {
  HostView o(*this, out, N * per_example, false);
  for (int n = 0; n < N; ++n) {
    normal_fill(o.get() + n * per_example, per_example, seed, purpose, sub_id, step, first_index + n);
  }
  o.write_back();
}

void Ops::images_to_model(float* out, const uint8_t* pixels_host, int64_t n) {
  HostView o(*this, out, n, false);
  float* dst = o.get();
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(pixels_host[i]) / 127.5f - 1.0f;
  o.write_back();
}

void Ops::q_sample(const Diffusion& d, float* x_t, const float* x0, const float* noise, const int* t, int N,
                   int64_t per_example) {
  const int64_t n = N * per_example;
  HostView xt(*this, x_t, n, false), a(*this, x0, n, true), e(*this, noise, n, true);
  d.q_sample(xt.get(), a.get(), e.get(), t, N, per_example);
  xt.write_back();
}

void Ops::training_losses(const Diffusion& d, double* losses, float* grad, const float* model_out, const float* x0,
                          const float* x_t, const float* noise, const int* t, int N, int64_t per_example,
                          double grad_weight) {
  const int64_t n = N * per_example;
  HostView g(*this, grad, n, false), out(*this, model_out, n, true), a(*this, x0, n, true), xt(*this, x_t, n, true),
      e(*this, noise, n, true);
  d.training_losses(losses, g.get(), out.get(), a.get(), xt.get(), e.get(), t, N, per_example, grad_weight);
  g.write_back();
}

void Ops::p_sample(const Diffusion& d, float* x_prev, float* pred_xstart, const float* model_out, const float* x_t,
                   const float* noise, const int* t, int N, int64_t per_example) {
  const int64_t n = N * per_example;
  HostView prev(*this, x_prev, n, false), x0(*this, pred_xstart, n, false), out(*this, model_out, n, true),
      xt(*this, x_t, n, true), e(*this, noise, n, true);
  d.p_sample(prev.get(), x0.get(), out.get(), xt.get(), e.get(), t, N, per_example, true);
  prev.write_back();
  x0.write_back();
}

void Ops::ddim_sample(const Diffusion& d, float* x_prev, float* pred_xstart, const float* model_out,
                      const float* x_t, const float* noise, const int* t, const int* t_prev, int N,
                      int64_t per_example, double eta) {
  const int64_t n = N * per_example;
  HostView prev(*this, x_prev, n, false), x0(*this, pred_xstart, n, false), out(*this, model_out, n, true),
      xt(*this, x_t, n, true), e(*this, noise, n, true);
  d.ddim_sample(prev.get(), x0.get(), out.get(), xt.get(), e.get(), t, t_prev, N, per_example, eta, true);
  prev.write_back();
  x0.write_back();
}

}  // namespace ddpm
