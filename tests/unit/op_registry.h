// One registry of (op, shape) cases that every backend is checked against, in the
// spirit of ggml's test-backend-ops: each case names the backend methods it runs (of
// Ops, core/ops.h, and of the diffusion kernels, core/diffusion_ops.h), holds its
// inputs, runs forward (and backward, for differentiable ops) on any backend, and says
// how the CPU result is checked (a plain reference in reference_ops.h, or the test that
// checks it elsewhere). Three suites walk it:
//   test_cpu_kernels     the CPU backend's forward results against the plain references
//   test_gradcheck       finite differences of backward on every backend present
//   test_gpu_op_registry the CUDA backend against the CPU, forward and backward
// Shapes are those the CIFAR10 (ch 128, ch_mult 1,2,2,2) and 256x256 (ch_mult
// 1,1,2,2,4,4) models run, at batch 1 or 2, next to tiny ones that make every
// element's gradient large enough to check one by one.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/ops.h"

namespace ddpm::test {

using HostTensors = std::map<std::string, std::vector<float>>;

// A case's tensors in one backend's memory while it runs, made from the case's host
// tensors; `doubles` holds results that Ops returns on the host (sums, losses).
class BackendTensors {
 public:
  BackendTensors(Ops& ops, const HostTensors& host);
  ~BackendTensors();
  BackendTensors(const BackendTensors&) = delete;
  BackendTensors& operator=(const BackendTensors&) = delete;

  float* operator[](const std::string& name) const;
  int64_t size(const std::string& name) const;
  // The named result on the host: a tensor's values, or a host result of `doubles`.
  std::vector<double> result(const std::string& name) const;
  std::vector<float> download(const std::string& name) const;
  float get(const std::string& name, int64_t i) const;
  void set(const std::string& name, int64_t i, float value);

  Ops& ops;
  std::map<std::string, std::vector<double>> doubles;

 private:
  struct Tensor {
    float* data;
    int64_t n;
  };
  std::map<std::string, Tensor> tensors_;
};

using RunFn = std::function<void(Ops&, BackendTensors&)>;
using ReferenceFn = std::function<std::map<std::string, std::vector<double>>(const HostTensors&)>;

struct OpCase {
  std::vector<std::string> methods;  // the backend methods it runs (make_conv2d: Conv2d's)
  std::string shape;                 // what it is in the model, with its sizes
  HostTensors tensors;               // every tensor it reads or writes, initial values
  RunFn forward;                     // writes `outputs`
  std::vector<std::string> outputs;  // tensors, or host results in BackendTensors::doubles
  // Differentiable cases: backward reads "d" + output for each output (the loss is
  // sum over outputs of dot(d<output>, output)) and writes "d" + input for each input.
  RunFn backward;
  std::vector<std::string> inputs;
  int fd_samples = 8;  // finite differences per input
  // The CPU forward's check: a plain reference of `outputs` within reference_bound
  // (norm-wise relative), or the suite that checks it (reference_elsewhere).
  ReferenceFn reference;
  double reference_bound = 1e-6;
  std::string reference_elsewhere;
  // CUDA (fp32) against the CPU, every output and input gradient, norm-wise relative.
  double cuda_bound = 1e-5;

  std::string label() const;
  std::vector<std::string> backward_outputs() const;  // "d" + each input
};

const std::vector<OpCase>& op_cases();

// A method a backend interface declares: Ops (core/ops.h) or DiffusionOps
// (core/diffusion_ops.h). Cases name methods without their interface, so the names are
// unique across both (the coverage test checks it).
struct DeclaredMethod {
  std::string interface, name;
};
// Read from the headers, so that a method added there without a case here fails the
// coverage test.
std::vector<DeclaredMethod> declared_backend_methods();
// Methods every case runs through BackendTensors, and those that compute nothing.
const std::vector<std::string>& methods_every_case_runs();
const std::vector<std::string>& methods_without_computation();

// ||got - want|| / ||want|| (0 when both are zero; infinite on a size mismatch).
double result_error(const std::vector<double>& got, const std::vector<double>& want);

// Runs forward, then backward when the case has one, on `ops`.
std::unique_ptr<BackendTensors> run_case(Ops& ops, const OpCase& c);

}  // namespace ddpm::test
