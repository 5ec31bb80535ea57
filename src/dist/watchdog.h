// The per-rank watchdog. The training loop reports a heartbeat (iteration, phase); a
// thread checks that it moves. When one phase makes no progress for longer than the
// timeout (train.step_timeout_s) — a collective that hangs because another rank stopped
// or died, a dead file system, a stuck device — the watchdog hands one line naming the
// rank, the phase and the iteration to its callback, which aborts the whole job
// (MPI_Abort) instead of letting it hang until the allocation runs out.
//
// The clock restarts with every phase and every beat(), so a long phase that reports
// progress (the sampler's steps) never trips it. A process that was stopped as a whole
// (Slurm suspend, SIGSTOP + SIGCONT of the job) is noticed by the thread's own oversleep
// and restarts the clock instead of aborting on wake-up.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace ddpm {

class Heartbeat;

// A phase of the training loop. `waits_for_others`: the phase is (or ends in) a
// collective, so a timeout there usually means another rank is stuck.
struct WatchPhase {
  const char* name;
  bool waits_for_others;
};

namespace phase {
constexpr WatchPhase kStartup{"startup", true};
constexpr WatchPhase kData{"data", false};
constexpr WatchPhase kForward{"forward", false};
constexpr WatchPhase kBackward{"backward", false};
constexpr WatchPhase kAllReduce{"gradient all-reduce", true};
constexpr WatchPhase kAgreement{"step agreement", true};
constexpr WatchPhase kOptimizer{"optimizer", false};
constexpr WatchPhase kConsistency{"consistency check", true};
constexpr WatchPhase kCheckpoint{"checkpoint", false};
constexpr WatchPhase kSampleGrid{"sample grid", true};
constexpr WatchPhase kFid{"FID measurement", true};
constexpr WatchPhase kFinish{"final checkpoint", true};
}  // namespace phase

class Watchdog {
 public:
  using TimeoutFn = std::function<void(const std::string& message)>;

  // Starts the thread in phase::kStartup. on_timeout is called once, from the watchdog
  // thread; it is expected not to return (the trainer's aborts the job).
  Watchdog(int rank, double timeout_s, TimeoutFn on_timeout);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Enters a phase of an iteration; the clock restarts.
  void enter(const WatchPhase& phase, int64_t iteration);
  // Progress inside a long phase (one sampler step); the clock restarts.
  void beat();
  // Publishes this rank's phase in dir (dist/heartbeat.h, a directory all ranks see)
  // and, on a timeout in a collective, names the ranks that stopped reporting.
  void attach_heartbeat(const std::string& dir, int world_size);

  // The line the watchdog reports (exposed for tests and the docs).
  // diagnosis: what the heartbeat files say about the other ranks ("" if nothing).
  static std::string timeout_message(int rank, const WatchPhase& phase, int64_t iteration, double stalled_s,
                                     double timeout_s, const std::string& diagnosis = "");

 private:
  void run();

  const int rank_;
  const double timeout_s_;
  const TimeoutFn on_timeout_;
  std::mutex mu_;
  std::condition_variable cv_;
  WatchPhase phase_ = phase::kStartup;
  int64_t iteration_ = 0;
  double since_s_ = 0;  // steady clock, when the phase started or last beat
  bool shutdown_ = false;
  std::thread thread_;
  std::unique_ptr<Heartbeat> heartbeat_;  // last: destroyed first, it reads the state above
};

}  // namespace ddpm
