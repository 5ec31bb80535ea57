// Picks the backend for a rank from the config's `device` section: the CPU (oneDNN) or
// one GPU per rank (CUDA; the local rank picks the device).
#pragma once

#include <memory>

#include "core/config.h"
#include "core/ops.h"
#include "core/precision.h"

namespace ddpm {

// threads: CPU threads for this rank (the resolved device.threads). InputError when the
// config asks for CUDA and the build has no CUDA backend or the node has no GPU.
std::unique_ptr<Ops> make_backend(const DeviceConfig& device, int local_rank, int threads);

// True when this build includes the CUDA backend.
bool cuda_backend_built();

#ifdef DDPM_WITH_CUDA
// src/core/cuda: the GPU of index `device` with the given precision.
std::unique_ptr<Ops> make_cuda_ops(int device, Precision precision);
#endif

}  // namespace ddpm
