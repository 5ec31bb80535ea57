// The gradient all-reduce on the GPU: NCCL over device memory, bootstrapped over MPI,
// on its own stream, overlapped with backward (see allreduce.h for the buckets).
// Built when CMake finds NCCL next to the CUDA backend (DDPM_WITH_NCCL).
#pragma once

#include <cstdint>
#include <memory>

#include "dist/allreduce.h"

namespace ddpm {

class Ops;

// cuda_ops must be the rank's CUDA backend (make_cuda_ops): its device and compute
// stream are used. A world of one does nothing, unless communicate_alone (tests: it
// then runs NCCL on a one-rank communicator, which exercises the whole path).
std::unique_ptr<GradientAllReduce> make_nccl_allreduce(const World& world, Ops& cuda_ops, int64_t bucket_floats,
                                                       bool communicate_alone = false);

}  // namespace ddpm
