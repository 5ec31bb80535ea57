// The choice between the MPI and the NCCL all-reduce (allreduce.h), kept out of the
// trainer so that it never needs to know which one this build has.
#include "core/common.h"
#include "core/ops.h"
#include "dist/allreduce.h"
#include "dist/world.h"
#ifdef DDPM_WITH_NCCL
#include "dist/nccl_allreduce.h"
#endif

namespace ddpm {

#ifdef DDPM_WITH_NCCL
constexpr bool kHaveNccl = true;
#else
constexpr bool kHaveNccl = false;
#endif

bool gradient_allreduce_available(const World& world, const Ops& ops) {
  return ops.host_memory() || world.size() == 1 || kHaveNccl;
}

std::unique_ptr<GradientAllReduce> make_gradient_allreduce(const World& world, Ops& ops, int64_t bucket_floats) {
#ifdef DDPM_WITH_NCCL
  if (!ops.host_memory()) return make_nccl_allreduce(world, ops, bucket_floats);
#endif
  DDPM_CHECK(gradient_allreduce_available(world, ops), "device gradients on several ranks need NCCL");
  return make_mpi_allreduce(world, bucket_floats);  // host memory, or a world of one (no reduction)
}

}  // namespace ddpm
