// The backends this process can run: the CPU always, CUDA (fp32) when the build has it
// and a device is present, decided as tests/gpu/gpu_test.h decides.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/ops.h"
#ifdef DDPM_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace ddpm::test {

struct PresentBackend {
  std::string name;
  Ops* ops;
};

// Made on first use and never destroyed (cuDNN handles must not outlive the runtime);
// held through a static pointer, so that LeakSanitizer still sees them at exit.
inline const std::vector<PresentBackend>& present_backends() {
  static const std::vector<PresentBackend>* all = [] {
    auto* b = new std::vector<PresentBackend>{{"cpu", make_cpu_ops().release()}};
#ifdef DDPM_WITH_CUDA
    int count = 0;
    if (cudaGetDeviceCount(&count) == cudaSuccess && count > 0) b->push_back({"cuda", make_cuda_ops(0, Precision::kFp32).release()});
#endif
    return b;
  }();
  return *all;
}

}  // namespace ddpm::test
