#include "core/backend.h"

#include "core/common.h"

namespace ddpm {

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::kFp32;
  if (name == "tf32") return Precision::kTf32;
  if (name == "bf16") return Precision::kBf16;
  input_error("device.precision: unknown value '", name, "' (fp32|tf32|bf16)");
}

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::kFp32: return "fp32";
    case Precision::kTf32: return "tf32";
    case Precision::kBf16: return "bf16";
  }
  return "?";
}

bool cuda_backend_built() {
#ifdef DDPM_WITH_CUDA
  return true;
#else
  return false;
#endif
}

std::unique_ptr<Ops> make_backend(const DeviceConfig& device, int local_rank, int threads) {
  const Precision precision = parse_precision(device.precision);
  if (device.kind == "cuda") {
#ifdef DDPM_WITH_CUDA
    return make_cuda_ops(local_rank, precision);
#else
    input_error("device.kind is cuda but this build has no CUDA backend (rebuild with nvcc on the PATH)");
#endif
  }
  return make_cpu_ops(threads, precision, device.winograd);
}

}  // namespace ddpm
