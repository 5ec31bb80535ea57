// The NCCL gradient all-reduce on a one-rank communicator (communicate_alone): every
// bucket goes through ncclAllReduce on the communication stream, ordered after the
// compute stream by events, and finish() orders the compute stream after it. With one
// rank the sum is the input, so the buffer must come back unchanged (and complete).
#define BOOST_TEST_MODULE nccl_allreduce
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
}  // namespace

BOOST_AUTO_TEST_CASE(buckets_are_reduced_in_order_and_finish_orders_the_compute_stream) {
  Ops& g = gpu();
  const int64_t n = 1000003, bucket = 65536;
  auto reduce = make_nccl_allreduce(world(), g, bucket, /*communicate_alone=*/true);
  const std::vector<float> host = random(n, 7);
  Buffer grads(g, n);
  for (int step = 0; step < 3; ++step) {
    g.zero(grads.get(), n);
    reduce->begin(grads.get(), n);
    // "Backward" writes the buffer from its end in pieces, declaring each piece final.
    for (int64_t end = n; end > 0; end -= 150000) {
      const int64_t lo = std::max<int64_t>(0, end - 150000);
      g.upload(grads.get() + lo, host.data() + lo, end - lo);
      reduce->ready(lo);
    }
    reduce->finish();
    g.add_inplace(grads.get(), grads.get(), n);  // compute-stream work after finish: sees the sums
    std::vector<float> got = grads.host();
    for (float& v : got) v *= 0.5f;
    BOOST_TEST_INFO("step " << step);
    BOOST_TEST(count_different(got, host) == 0u);
    BOOST_TEST(reduce->last_comm_seconds() >= 0.0);
    BOOST_TEST(reduce->last_wait_seconds() >= 0.0);
  }
}

DDPM_GPU_TEST_MAIN()
