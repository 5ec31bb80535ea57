// The pieces of fault tolerance that need no second rank: the fault-injection spec, the
// watchdog, and the background checkpoint writer (a write that fails on a full disk
// leaves the previous checkpoint and `latest` exactly as they were).
#define BOOST_TEST_MODULE dist_units
#include <hdf5.h>
#include <sys/resource.h>

#include <atomic>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <mutex>
#include <thread>

#include "core/backend.h"
#include "core/clock.h"
#include "core/common.h"
#include "core/fs.h"
#include "core/ops.h"
#include "dist/heartbeat.h"
#include "dist/watchdog.h"
#include "io/checkpoint.h"
#include "train/checkpoint_writer.h"
#include "train/fault_injection.h"

namespace ddpm {
namespace {

// As in ddpm_train: no HDF5 clean-up at exit, which crashes after a failed write.
struct NoHdf5AtExit {
  NoHdf5AtExit() { H5dont_atexit(); }
};
BOOST_TEST_GLOBAL_FIXTURE(NoHdf5AtExit);

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/ddpm-dist-units-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(fault_injection)

BOOST_AUTO_TEST_CASE(parses_kinds_ranks_and_iteration_ranges) {
  const FaultInjector f = FaultInjector::parse(
      "nan_grad:rank=1:iteration=5,nan_loss:iteration=2-3:rank=0,perturb_param:rank=2:iteration=7-");
  BOOST_TEST(f.faults().size() == 3u);
  BOOST_TEST(f.fires(FaultKind::kNanGrad, 1, 5));
  BOOST_TEST(!f.fires(FaultKind::kNanGrad, 1, 4));
  BOOST_TEST(!f.fires(FaultKind::kNanGrad, 1, 6));
  BOOST_TEST(!f.fires(FaultKind::kNanGrad, 0, 5));
  BOOST_TEST(!f.fires(FaultKind::kNanLoss, 1, 5));
  BOOST_TEST(f.fires(FaultKind::kNanLoss, 0, 2));
  BOOST_TEST(f.fires(FaultKind::kNanLoss, 0, 3));
  BOOST_TEST(!f.fires(FaultKind::kNanLoss, 0, 4));
  BOOST_TEST(f.fires(FaultKind::kPerturbParam, 2, 7));
  BOOST_TEST(f.fires(FaultKind::kPerturbParam, 2, int64_t{1} << 40));
  BOOST_TEST(FaultInjector().empty());
}

BOOST_AUTO_TEST_CASE(rejects_malformed_specs_with_one_line) {
  for (const char* spec : {"", "nan_grad", "nan_grad:rank=1", "nan_grad:iteration=1", "nan:rank=1:iteration=1",
                           "nan_grad:rank=-1:iteration=1", "nan_grad:rank=1:iteration=x",
                           "nan_grad:rank=1:iteration=5-2",
                           "nan_grad:rank=1:rank=2:iteration=1", "nan_grad:rank=1:iteration=1:when=now",
                           "nan_grad:rank=1:iteration=1,", "nan_grad:rank=1:iteration=99999999999999999999"}) {
    std::string message;
    try {
      FaultInjector::parse(spec);
    } catch (const InputError& e) {
      message = e.what();
    }
    BOOST_TEST_INFO("spec '" << spec << "'");
    BOOST_TEST(message.rfind("DDPM_FAULT_INJECT: ", 0) == 0u);
    BOOST_TEST(message.find('\n') == std::string::npos);
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(watchdog)

BOOST_AUTO_TEST_CASE(a_stalled_phase_reports_rank_phase_and_iteration_once) {
  std::mutex mu;
  std::vector<std::string> messages;
  const double t0 = now_seconds();
  double fired_at = 0;
  {
    Watchdog dog(3, 0.3, [&](const std::string& m) {
      std::lock_guard<std::mutex> lock(mu);
      messages.push_back(m);
      fired_at = now_seconds();
    });
    dog.enter(phase::kAllReduce, 7);
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
  }
  BOOST_REQUIRE(messages.size() == 1u);
  const std::string& m = messages[0];
  BOOST_TEST(m.find("watchdog: rank 3 made no progress") != std::string::npos);
  BOOST_TEST(m.find("phase 'gradient all-reduce' of iteration 7") != std::string::npos);
  BOOST_TEST(m.find("waiting for the other ranks") != std::string::npos);
  BOOST_TEST(fired_at - t0 >= 0.3);
  BOOST_TEST(fired_at - t0 <= 0.6);
}

BOOST_AUTO_TEST_CASE(progress_keeps_it_quiet) {
  std::atomic<int> fired{0};
  {
    Watchdog dog(0, 0.3, [&](const std::string&) { ++fired; });
    for (int i = 0; i < 30; ++i) {  // 1.5 s in all, 5x the timeout
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (i % 2) dog.beat();
      else dog.enter(phase::kForward, i);
    }
  }
  BOOST_TEST(fired.load() == 0);
}

BOOST_AUTO_TEST_CASE(a_local_phase_blames_this_rank) {
  const std::string m = Watchdog::timeout_message(5, phase::kData, 12, 30.5, 30);
  BOOST_TEST(m.find("rank 5") != std::string::npos);
  BOOST_TEST(m.find("phase 'data' of iteration 12") != std::string::npos);
  BOOST_TEST(m.find("this rank is stuck") != std::string::npos);
}

Beat beat_at(int64_t iteration, const WatchPhase& p, uint64_t seq = 0) {
  Beat b;
  b.valid = true;
  b.seq = seq;
  b.iteration = iteration;
  b.phase = p.name;
  b.waits_for_others = p.waits_for_others;
  return b;
}

BOOST_AUTO_TEST_CASE(heartbeats_name_the_silent_and_the_busy_ranks) {
  // Rank 0 timed out; 1 stopped (same counter twice); 2 waits like rank 0; 3 is busy
  // reading data; 4 never wrote a file.
  const std::vector<Beat> first = {beat_at(9, phase::kAllReduce, 5), beat_at(9, phase::kForward, 7),
                                   beat_at(9, phase::kAllReduce, 3), beat_at(9, phase::kData, 4), Beat{}};
  std::vector<Beat> second = first;
  second[0].seq = 8;
  second[2].seq = 6;
  second[3].seq = 9;
  const std::string d = Heartbeat::describe(first, second, 0);
  BOOST_TEST(d == "rank 1 stopped reporting (last in phase 'forward' of iteration 9); rank 4 has no heartbeat; "
                  "rank 3 is busy in phase 'data' of iteration 9");
  // Everyone else moving and waiting: say so rather than blame anyone.
  const std::vector<Beat> waiting = {second[0], second[2]};
  BOOST_TEST(Heartbeat::describe({first[0], first[2]}, waiting, 0) == "every other rank reports that it is waiting too");
}

BOOST_AUTO_TEST_CASE(a_stopped_peer_is_named_in_the_timeout_line) {
  const std::string dir = fs::join(DDPM_BINARY_DIR, "tests/mpi/heartbeat_unit");
  std::remove(Heartbeat::file_path(dir, 0).c_str());
  std::remove(Heartbeat::file_path(dir, 1).c_str());
  // Rank 1's heartbeat stops when its object goes (as a SIGSTOP would stop its thread).
  {
    Heartbeat peer(dir, 1, 2, [] { return beat_at(4, phase::kBackward); }, 0.05);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  const Beat last = Heartbeat::read(Heartbeat::file_path(dir, 1));
  BOOST_REQUIRE(last.valid);
  BOOST_TEST(last.seq >= 2u);
  BOOST_TEST(last.phase == "backward");
  std::mutex mu;
  std::string message;
  {
    Watchdog dog(0, 0.3, [&](const std::string& m) {
      std::lock_guard<std::mutex> lock(mu);
      message = m;
    });
    dog.attach_heartbeat(dir, 2);
    dog.enter(phase::kAllReduce, 4);
    std::this_thread::sleep_for(std::chrono::milliseconds(3500));  // 0.3 s + two reads 2.5 s apart
  }
  BOOST_TEST_MESSAGE(message);
  BOOST_TEST(message.find("rank 1 stopped reporting (last in phase 'backward' of iteration 4)") != std::string::npos);
  BOOST_TEST(message.find("aborting the job") != std::string::npos);
  BOOST_TEST(Heartbeat::read(Heartbeat::file_path(dir, 0)).phase == "gradient all-reduce");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(checkpoint_writer)

// A small layout with one tensor large enough (1 MiB) to outgrow the file-size limit.
struct WriterFixture {
  TempDir tmp;
  ParamLayout layout;
  std::unique_ptr<Ops> ops = make_cpu_ops(1);
  HostFloats params, ema, m, v;
  std::string dir;
  WriterFixture() {
    layout.add("conv.weight", {256, 1024}, InitKind::kWeight);
    layout.add("conv.bias", {256}, InitKind::kBias);
    for (HostFloats* b : {&params, &ema, &m, &v}) *b = alloc_host_floats(layout.size());
    dir = fs::join(tmp.path, "checkpoints");
  }
  void fill(float base) {
    for (int64_t i = 0; i < layout.size(); ++i) {
      params[i] = base + i, ema[i] = base - i, m[i] = base * 2, v[i] = base * 3;
    }
  }
  TrainBuffers buffers() const { return {params.get(), ema.get(), m.get(), v.get()}; }
  TrainState state(int64_t step) const {
    TrainState s;
    s.step = s.iteration = step;
    s.config_yaml = "train:\n  seed: 0\n";
    return s;
  }
};

BOOST_FIXTURE_TEST_CASE(writes_in_the_background_and_reads_back, WriterFixture) {
  CheckpointWriter writer(dir, ModelConfig{}, layout, 2);
  fill(1);
  writer.start(*ops, buffers(), state(10));
  fill(99);  // the snapshot was taken: training may change the buffers at once
  writer.wait();
  const std::vector<CheckpointWriter::Outcome> done = writer.take_finished();
  BOOST_REQUIRE(done.size() == 1u);
  BOOST_TEST(done[0].ok);
  BOOST_TEST(done[0].step == 10);
  BOOST_TEST(writer.last_committed_step() == 10);
  BOOST_TEST(writer.take_finished().empty());
  BOOST_TEST(fs::read_text(fs::join(dir, "latest")) == "ckpt-00000010.h5\n");
  HostFloats back = alloc_host_floats(layout.size());
  const TrainState s = read_checkpoint(done[0].path, layout, TrainBuffers{back.get(), nullptr, nullptr, nullptr});
  BOOST_TEST(s.step == 10);
  BOOST_TEST(back[5] == 6.0f);  // from fill(1), not fill(99)
}

BOOST_FIXTURE_TEST_CASE(a_failed_write_leaves_the_previous_checkpoint_intact, WriterFixture) {
  CheckpointWriter writer(dir, ModelConfig{}, layout, 2);
  fill(1);
  writer.start(*ops, buffers(), state(10));
  writer.wait();
  BOOST_REQUIRE(writer.take_finished().at(0).ok);
  const std::string previous = read_bytes(fs::join(dir, "ckpt-00000010.h5"));

  // A disk that fills up: writes past 256 KiB fail with EFBIG (SIGXFSZ ignored).
  rlimit saved;
  getrlimit(RLIMIT_FSIZE, &saved);
  auto* old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = saved;
  small.rlim_cur = 256 * 1024;
  BOOST_REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
  fill(2);
  writer.start(*ops, buffers(), state(20));
  writer.wait();
  setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, old_handler);

  const std::vector<CheckpointWriter::Outcome> done = writer.take_finished();
  BOOST_REQUIRE(done.size() == 1u);
  BOOST_TEST(!done[0].ok);
  BOOST_TEST(done[0].step == 20);
  BOOST_TEST(done[0].error.find("ckpt-00000020.h5") != std::string::npos);
  BOOST_TEST(writer.last_committed_step() == 10);
  BOOST_TEST(read_bytes(fs::join(dir, "ckpt-00000010.h5")) == previous);
  BOOST_TEST(fs::read_text(fs::join(dir, "latest")) == "ckpt-00000010.h5\n");
  BOOST_TEST(!fs::exists(fs::join(dir, "ckpt-00000020.h5")));
  BOOST_TEST(!fs::exists(fs::join(dir, "ckpt-00000020.h5.tmp")));

  // The disk has room again: the next write works.
  writer.start(*ops, buffers(), state(30));
  writer.wait();
  BOOST_TEST(writer.take_finished().at(0).ok);
  BOOST_TEST(fs::read_text(fs::join(dir, "latest")) == "ckpt-00000030.h5\n");
}

BOOST_FIXTURE_TEST_CASE(keeps_the_newest_k_and_removes_leftovers_of_killed_writes, WriterFixture) {
  {
    CheckpointWriter writer(dir, ModelConfig{}, layout, 2);
    for (int64_t step : {1, 2, 3}) writer.start(*ops, buffers(), state(step));
  }  // the destructor finishes the last write
  BOOST_TEST(list_checkpoints(dir) ==
             (std::vector<std::string>{fs::join(dir, "ckpt-00000003.h5"), fs::join(dir, "ckpt-00000002.h5")}));
  for (const char* name : {"ckpt-00000004.h5.tmp", "latest.tmp", "notes.tmp"}) {
    std::ofstream(fs::join(dir, name)) << "partial";
  }
  BOOST_TEST(remove_unfinished_checkpoints(dir) == 2);
  BOOST_TEST(!fs::exists(fs::join(dir, "ckpt-00000004.h5.tmp")));
  BOOST_TEST(!fs::exists(fs::join(dir, "latest.tmp")));
  BOOST_TEST(fs::exists(fs::join(dir, "notes.tmp")));  // not ours
  BOOST_TEST(fs::exists(fs::join(dir, "ckpt-00000003.h5")));
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace ddpm
