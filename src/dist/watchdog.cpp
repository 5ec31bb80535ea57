#include "dist/watchdog.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "core/clock.h"
#include "core/common.h"
#include "dist/heartbeat.h"

namespace ddpm {
namespace {

// Two reads of the heartbeat files 2.5 s apart, plus a slow file system's slack.
constexpr double kDiagnoseLimitS = 8.0;

std::string seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", s);
  return buf;
}

}  // namespace

Watchdog::Watchdog(int rank, double timeout_s, TimeoutFn on_timeout)
    : rank_(rank), timeout_s_(timeout_s), on_timeout_(std::move(on_timeout)) {
  DDPM_CHECK(timeout_s > 0 && on_timeout_);
  since_s_ = now_seconds();
  thread_ = std::thread([this] { run(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutdown_ = true;
  }
  cv_.notify_all();
  thread_.join();
  heartbeat_.reset();  // after the thread that may diagnose with it; it takes mu_
}

void Watchdog::enter(const WatchPhase& phase, int64_t iteration) {
  std::lock_guard<std::mutex> lock(mu_);
  phase_ = phase;
  iteration_ = iteration;
  since_s_ = now_seconds();
}

void Watchdog::beat() {
  std::lock_guard<std::mutex> lock(mu_);
  since_s_ = now_seconds();
}

void Watchdog::attach_heartbeat(const std::string& dir, int world_size) {
  auto hb = std::make_unique<Heartbeat>(dir, rank_, world_size, [this] {
    std::lock_guard<std::mutex> lock(mu_);
    Beat b;
    b.iteration = iteration_;
    b.phase = phase_.name;
    b.waits_for_others = phase_.waits_for_others;
    return b;
  });
  std::lock_guard<std::mutex> lock(mu_);
  heartbeat_ = std::move(hb);
}

std::string Watchdog::timeout_message(int rank, const WatchPhase& phase, int64_t iteration, double stalled_s,
                                      double timeout_s, const std::string& diagnosis) {
  return cat("ddpm_train: error: watchdog: rank ", rank, " made no progress for ", seconds(stalled_s),
             " s in phase '", phase.name, "' of iteration ", iteration, " (train.step_timeout_s = ",
             seconds(timeout_s), "): ",
             phase.waits_for_others ? "it is waiting for the other ranks, so another rank is hung, stopped or dead, "
                                      "or the network failed"
                                    : "this rank is stuck in its own work (device, file system or data)",
             diagnosis.empty() ? "" : "; " + diagnosis, "; aborting the job");
}

void Watchdog::run() {
  // Poll often enough to fire within ~5% of the timeout, at most once a second.
  const double poll_s = std::clamp(timeout_s_ / 20, 0.02, 1.0);
  // An oversleep this long means the whole process was stopped (suspend), not a hang.
  const double suspended_s = std::max(5 * poll_s, 2.0);
  std::unique_lock<std::mutex> lock(mu_);
  double last_wake = now_seconds();
  while (!shutdown_) {
    cv_.wait_for(lock, std::chrono::duration<double>(poll_s));
    if (shutdown_) break;
    const double now = now_seconds();
    if (now - last_wake > suspended_s) since_s_ = now;  // woke from a suspend: start over
    last_wake = now;
    const double stalled = now - since_s_;
    if (stalled > timeout_s_) {
      const WatchPhase phase = phase_;
      const int64_t iteration = iteration_;
      Heartbeat* hb = phase.waits_for_others ? heartbeat_.get() : nullptr;
      lock.unlock();
      // Which rank is missing, from the heartbeat files (a few seconds; bounded).
      const std::string diagnosis = hb ? hb->diagnose(kDiagnoseLimitS) : "";
      on_timeout_(timeout_message(rank_, phase, iteration, stalled, timeout_s_, diagnosis));
      return;
    }
  }
}

}  // namespace ddpm
