// Heartbeat files: how a rank whose collective timed out tells which rank is missing.
// Each rank's heartbeat thread rewrites <dir>/rank-R about once a second with a counter
// and the rank's phase and iteration. The rank whose watchdog fires reads every rank's
// file twice, a few intervals apart, and names the ranks whose counter stood still
// (stopped, dead, or their node gone) and those still busy in their own work.
//
// Counters rather than timestamps, so the nodes' clocks need not agree; each write opens,
// writes and closes the file, so network file systems (close-to-open consistency) show
// it to the other nodes. Writing and diagnosing run on threads of their own: a dead file
// system can hang them, never the watchdog.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace ddpm {

// What a rank is doing, as its heartbeat file says.
struct Beat {
  bool valid = false;  // the file exists and parses
  uint64_t seq = 0;    // incremented by every write
  int64_t iteration = 0;
  bool waits_for_others = false;  // the phase is a collective
  std::string phase;
};

class Heartbeat {
 public:
  using StateFn = std::function<Beat()>;  // the rank's phase now (seq ignored)

  // Starts the writer thread. A directory that cannot be created or written disables
  // the heartbeat (training must not depend on it); the diagnosis then says so.
  Heartbeat(std::string dir, int rank, int world_size, StateFn state, double interval_s = 1.0);
  ~Heartbeat();
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;

  // One clause for the watchdog's line: the silent ranks and the busy ones, from two
  // reads of every file 2.5 intervals apart; "" if that takes longer than limit_s
  // (a hung file system). Safe to call after the Heartbeat is gone (copies what it needs).
  std::string diagnose(double limit_s) const;

  static std::string file_path(const std::string& dir, int rank);
  static Beat read(const std::string& path);
  // The clause, from the two reads (index = rank); exposed for the tests.
  static std::string describe(const std::vector<Beat>& first, const std::vector<Beat>& second, int self);

 private:
  void run();

  const std::string dir_;
  const int rank_, world_size_;
  const StateFn state_;
  const double interval_s_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool shutdown_ = false;
  std::thread thread_;
};

}  // namespace ddpm
