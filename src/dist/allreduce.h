// The gradient all-reduce: one interface, MPI on the host (this file's
// make_mpi_allreduce), NCCL on the GPU (dist/nccl_allreduce.cpp), and one factory that
// picks between them by where the gradients live (make_gradient_allreduce). Buckets are
// contiguous ranges of the flat gradient buffer, taken from its end: the parameter
// layout follows the forward pass, so backward finishes gradients from the end of the
// buffer towards the start (UNet::backward's ready hook) and each bucket is sent as soon
// as it is complete, while backward goes on with the rest.
#pragma once

#include <cstdint>
#include <memory>

namespace ddpm {

class Ops;
class World;

class GradientAllReduce {
 public:
  virtual ~GradientAllReduce() = default;
  // A new step: grads [n] (backend memory) will be summed over the ranks.
  virtual void begin(float* grads, int64_t n) = 0;
  // Backward has finished every gradient at offsets >= first_final_offset.
  virtual void ready(int64_t first_final_offset) = 0;
  // Sends what is left and waits: grads then holds the sum over all ranks.
  virtual void finish() = 0;
  // Seconds finish() waited in the last step: communication not hidden behind backward.
  virtual double last_wait_seconds() const = 0;
  // Seconds the last step's reductions took in total (hidden or not).
  virtual double last_comm_seconds() const = 0;
};

// How the host all-reduce overlaps backward:
//  kThread       MPI_Allreduce per bucket on a communication thread of its own, which
//                drives MPI's progress all through backward (needs MPI_THREAD_MULTIPLE);
//  kNonBlocking  MPI_Iallreduce per bucket started from ready() on the calling thread,
//                progressed by MPI_Testall in later ready() calls, completed in finish();
//  kAuto         kThread when the library offers MPI_THREAD_MULTIPLE, else kNonBlocking.
// Both sum each bucket with one collective on a duplicated communicator, so the result
// is identical on every rank and from run to run.
enum class AllReduceMode { kAuto, kThread, kNonBlocking };

// Host memory. A world of one does nothing.
std::unique_ptr<GradientAllReduce> make_mpi_allreduce(const World& world, int64_t bucket_floats,
                                                      AllReduceMode mode = AllReduceMode::kAuto);

// The all-reduce for gradients in the memory of `ops`, as Horovod picks its backend:
// host memory goes through MPI, device memory through NCCL (same buckets either way);
// a world of one needs no reduction and takes the MPI one, which does nothing. The only
// place that knows whether this build has NCCL.
std::unique_ptr<GradientAllReduce> make_gradient_allreduce(const World& world, Ops& ops, int64_t bucket_floats);
// Whether make_gradient_allreduce can reduce gradients in the memory of `ops` over
// `world` (false for device memory on several ranks in a build without NCCL).
bool gradient_allreduce_available(const World& world, const Ops& ops);

}  // namespace ddpm
