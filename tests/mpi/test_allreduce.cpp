// Run under mpirun (3 ranks, ctest does it): the bucketed gradient all-reduce in both
// overlap modes, for bucket sizes from one float to the whole buffer and for ready()
// calls that differ from rank to rank, sums exactly and leaves every rank with the same
// bits; and the World collectives the trainer relies on.
#define BOOST_TEST_MODULE allreduce
#include <boost/test/unit_test.hpp>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "core/clock.h"
#include "io/weights_io.h"
#include "dist/allreduce.h"
#include "dist/world.h"

namespace ddpm {
namespace {

World* g_world = nullptr;

struct MpiFixture {
  MpiFixture() {
    static int argc = 0;
    static char** argv = nullptr;
    g_world = new World(&argc, &argv);
  }
  ~MpiFixture() { delete g_world; }
};
BOOST_TEST_GLOBAL_FIXTURE(MpiFixture);

const World& world() { return *g_world; }

// Values whose sums are exact in float32: rank r holds (r + 1) * (i % 97) - 40.
float value(int rank, int64_t i) { return static_cast<float>((rank + 1) * (i % 97) - 40); }

void check_sum(AllReduceMode mode, int64_t n, int64_t bucket) {
  const World& w = world();
  std::vector<float> grads(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) grads[i] = value(w.rank(), i);
  auto reducer = make_mpi_allreduce(w, bucket, mode);
  for (int repeat = 0; repeat < 2; ++repeat) {  // the reducer is reused step after step
    for (int64_t i = 0; i < n; ++i) grads[i] = value(w.rank(), i);
    const double begun = now_seconds();
    reducer->begin(grads.data(), n);
    // Backward reports offsets that only decrease, in steps that differ between ranks.
    std::mt19937 rng(static_cast<unsigned>(w.rank() * 7919 + repeat));
    for (int64_t offset = n; offset > 0;) {
      offset = std::max<int64_t>(0, offset - 1 - static_cast<int64_t>(rng() % (n / 5 + 1)));
      reducer->ready(offset);
    }
    const double finish_called = now_seconds();
    reducer->finish();
    const double finished = now_seconds();
    // The step's figures describe this step: the wait lies inside finish(), the
    // reductions (hidden or not) between begin() and the end of finish(), and summing a
    // non-empty buffer over several ranks takes time.
    BOOST_TEST(reducer->last_wait_seconds() <= finished - finish_called);
    BOOST_TEST(reducer->last_comm_seconds() > 0.0);
    BOOST_TEST(reducer->last_comm_seconds() <= finished - begun);
  }
  int64_t wrong = 0;
  for (int64_t i = 0; i < n; ++i) {
    float expected = 0;
    for (int r = 0; r < w.size(); ++r) expected += value(r, i);
    wrong += grads[i] != expected;
  }
  BOOST_TEST(wrong == 0);
  const std::vector<int64_t> crcs = w.allgather(tensor_crc32(grads.data(), n));
  for (int64_t c : crcs) BOOST_TEST(c == crcs[0]);
}

}  // namespace

BOOST_AUTO_TEST_CASE(runs_on_several_ranks) { BOOST_TEST(world().size() >= 2); }

// Its own ctest (tests/mpi/CMakeLists.txt), whose SKIP_REGULAR_EXPRESSION turns the line
// below into a reported skip.
BOOST_AUTO_TEST_CASE(thread_mode_sums_every_bucket) {
  if (!world().thread_multiple()) {
    if (world().is_root()) std::printf("SKIPPED: this MPI library does not offer MPI_THREAD_MULTIPLE\n");
    return;
  }
  for (int64_t bucket : {int64_t{1}, int64_t{100}, int64_t{1000}, int64_t{10007}, int64_t{1} << 20}) {
    BOOST_TEST_CONTEXT("bucket " << bucket) { check_sum(AllReduceMode::kThread, 10007, bucket); }
  }
}

BOOST_AUTO_TEST_CASE(non_blocking_mode_sums_every_bucket) {
  for (int64_t bucket : {int64_t{1}, int64_t{100}, int64_t{1000}, int64_t{10007}, int64_t{1} << 20}) {
    BOOST_TEST_CONTEXT("bucket " << bucket) { check_sum(AllReduceMode::kNonBlocking, 10007, bucket); }
  }
}

BOOST_AUTO_TEST_CASE(agree_on_error_takes_the_lowest_failing_rank) {
  const World& w = world();
  BOOST_TEST(w.agree_on_error("").empty());
  const std::string mine = w.rank() >= 1 ? "bad shard on rank " + std::to_string(w.rank()) : "";
  BOOST_TEST(w.agree_on_error(mine) == "bad shard on rank 1");
}

BOOST_AUTO_TEST_CASE(broadcast_and_allgather) {
  const World& w = world();
  int64_t fields[3] = {w.rank() == 0 ? 11 : -1, w.rank() == 0 ? 22 : -1, w.rank() == 0 ? 33 : -1};
  w.broadcast(fields, 3);
  BOOST_TEST(fields[0] == 11);
  BOOST_TEST(fields[2] == 33);
  const std::vector<int64_t> all = w.allgather(100 + w.rank());
  BOOST_REQUIRE(static_cast<int>(all.size()) == w.size());
  for (int r = 0; r < w.size(); ++r) BOOST_TEST(all[r] == 100 + r);
}

}  // namespace ddpm
