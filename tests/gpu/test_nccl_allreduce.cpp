// The NCCL gradient all-reduce under mpirun. On 2+ ranks (ctest runs 2) every rank holds
// different data, so a bucket that is lost, sent twice or cut at the wrong boundary
// changes the sums; bucket sizes range from a few thousand floats to the whole buffer
// and each rank declares its gradients final in pieces of its own size. On one rank
// (communicate_alone) the sum is the input. Either way finish() must order the compute
// stream after the reductions.
//
// Each rank takes GPU local_rank % device count. NCCL refuses two ranks of one
// communicator on the same GPU ("Duplicate GPU detected"), so with fewer GPUs than ranks
// on the node the suite reports skipped.
#define BOOST_TEST_MODULE nccl_allreduce
#include <algorithm>

#include "core/clock.h"
#include "dist/nccl_allreduce.h"
#include "dist/world.h"
#include "gpu_test.h"

using namespace ddpm;
using namespace ddpm::gputest;

namespace {

World& world() {
  static World w(&boost::unit_test::framework::master_test_suite().argc,
                 &boost::unit_test::framework::master_test_suite().argv);
  return w;
}

int device_count() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess ? count : 0;
}

Ops& rank_gpu() {
  static Ops* ops = make_cuda_ops(world().local_rank() % device_count(), Precision::kFp32).release();
  return *ops;
}

// Sums of these are exact in float32: rank r holds (r + 1) (i % 97) - 40 + r.
float value(int rank, int64_t i) { return static_cast<float>((rank + 1) * (i % 97) - 40 + rank); }

}  // namespace

BOOST_AUTO_TEST_CASE(every_bucket_is_summed_and_finish_orders_the_compute_stream) {
  const World& w = world();
  Ops& g = rank_gpu();
  const int64_t n = 1000003;
  std::vector<float> mine(static_cast<size_t>(n)), want(static_cast<size_t>(n), 0.0f);
  for (int64_t i = 0; i < n; ++i) {
    mine[i] = value(w.rank(), i);
    for (int r = 0; r < w.size(); ++r) want[i] += value(r, i);
  }
  Buffer grads(g, n);
  for (int64_t bucket : {int64_t{4099}, int64_t{65536}, n}) {
    auto reduce = make_nccl_allreduce(w, g, bucket, /*communicate_alone=*/w.size() == 1);
    for (int step = 0; step < 2; ++step) {
      g.zero(grads.get(), n);
      const double begun = now_seconds();
      reduce->begin(grads.get(), n);
      // "Backward" writes the buffer from its end in pieces of a size that differs
      // between ranks, declaring each piece final.
      const int64_t piece = 150000 + 37001 * w.rank();
      for (int64_t end = n; end > 0; end -= piece) {
        const int64_t lo = std::max<int64_t>(0, end - piece);
        g.upload(grads.get() + lo, mine.data() + lo, end - lo);
        reduce->ready(lo);
      }
      reduce->finish();
      g.add_inplace(grads.get(), grads.get(), n);  // compute-stream work after finish: sees the sums
      std::vector<float> got = grads.host();
      for (float& v : got) v *= 0.5f;
      // The step's figures: reductions took time, all of it within the step.
      const double comm = reduce->last_comm_seconds(), wait = reduce->last_wait_seconds();
      const double elapsed = now_seconds() - begun;
      BOOST_TEST_INFO("rank " << w.rank() << " of " << w.size() << ", bucket " << bucket << ", step " << step);
      BOOST_TEST(count_different(got, want) == 0u);
      BOOST_TEST(comm > 0.0);
      BOOST_TEST(comm <= elapsed);
      BOOST_TEST(wait <= elapsed);
    }
  }
}

int main(int argc, char** argv) {
  if (!gpu_present()) {
    std::printf("no CUDA device: %s skipped\n", argv[0]);
    return kSkipCode;
  }
  int local_size = 1;  // Open MPI and Slurm say how many ranks share the node
  for (const char* var : {"OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE"}) {
    if (const char* v = std::getenv(var)) {
      local_size = std::max(1, std::atoi(v));
      break;
    }
  }
  if (local_size > device_count()) {
    std::printf("%d ranks on this node but %d GPU(s), and NCCL needs one GPU per rank: %s skipped\n", local_size,
                device_count(), argv[0]);
    return kSkipCode;
  }
  return boost::unit_test::unit_test_main(&init_unit_test, argc, argv);
}
