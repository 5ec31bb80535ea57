#include "dist/signals.h"

#include <pthread.h>

#include <atomic>
#include <csignal>
#include <thread>

namespace ddpm {
namespace {
std::atomic<int> g_stop_signal{0};

extern "C" void on_stop_signal(int sig) { g_stop_signal.store(sig); }

sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGTERM);
  return set;
}
}  // namespace

// The signals are blocked in the calling thread, so in every thread it starts later
// (MPI's, OpenMP's, the loader's, the writers'), and taken by one thread that waits for
// them. A handler running on a compute thread would push its frame onto that thread's
// stack in the middle of JIT-compiled code (oneDNN), which is not guaranteed to keep
// live data above the stack pointer; that corrupted the heap about one stop in ten.
// The handler stays installed for a thread that has them unblocked anyway.
void install_stop_handlers() {
  struct sigaction sa = {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  const sigset_t set = stop_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set] {
    while (true) {
      int sig = 0;
      if (sigwait(&set, &sig) == 0) g_stop_signal.store(sig);
    }
  }).detach();
}

int stop_signal() { return g_stop_signal.load(); }

}  // namespace ddpm
