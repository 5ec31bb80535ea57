#include "core/backend.h"

#include "core/common.h"

namespace ddpm {

bool cuda_backend_built() {
#ifdef DDPM_WITH_CUDA
  return true;
#else
  return false;
#endif
}

std::unique_ptr<Ops> make_backend(const DeviceConfig& device, int local_rank, int threads) {
  if (device.kind == "cuda") {
#ifdef DDPM_WITH_CUDA
    return make_cuda_ops(local_rank, device.precision);
#else
    input_error("device.kind is cuda but this build has no CUDA backend (rebuild with nvcc on the PATH)");
#endif
  }
  return make_cpu_ops(threads);
}

}  // namespace ddpm
