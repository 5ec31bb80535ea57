#include "dist/heartbeat.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <future>
#include <memory>

#include "core/common.h"
#include "core/fs.h"

namespace ddpm {
namespace {

// One fixed-size record rewritten in place (no truncation, so a reader never sees an
// empty file); the closing ';' tells a whole record from a torn one.
constexpr size_t kRecordBytes = 128;
constexpr int kMaxNamed = 4;  // ranks named per kind before "and N more"

bool write_record(const std::string& path, const Beat& b) {
  char buf[kRecordBytes + 1];
  int n = std::snprintf(buf, sizeof(buf), "ddpm-heartbeat v1 seq=%" PRIu64 " iteration=%" PRId64 " waits=%d phase=%.60s;",
                        b.seq, b.iteration, b.waits_for_others ? 1 : 0, b.phase.c_str());
  if (n < 0 || static_cast<size_t>(n) >= kRecordBytes) return false;
  for (size_t i = static_cast<size_t>(n); i + 1 < kRecordBytes; ++i) buf[i] = ' ';
  buf[kRecordBytes - 1] = '\n';
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  const bool ok = ::pwrite(fd, buf, kRecordBytes, 0) == static_cast<ssize_t>(kRecordBytes);
  return ::close(fd) == 0 && ok;
}

std::vector<Beat> read_all(const std::string& dir, int world_size) {
  std::vector<Beat> beats;
  beats.reserve(static_cast<size_t>(world_size));
  for (int r = 0; r < world_size; ++r) beats.push_back(Heartbeat::read(Heartbeat::file_path(dir, r)));
  return beats;
}

std::string where(const Beat& b) { return cat("phase '", b.phase, "' of iteration ", b.iteration); }

}  // namespace

Heartbeat::Heartbeat(std::string dir, int rank, int world_size, StateFn state, double interval_s)
    : dir_(std::move(dir)), rank_(rank), world_size_(world_size), state_(std::move(state)), interval_s_(interval_s) {
  DDPM_CHECK(state_ && interval_s_ > 0 && rank_ >= 0 && rank_ < world_size_);
  thread_ = std::thread([this] { run(); });
}

Heartbeat::~Heartbeat() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutdown_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::string Heartbeat::file_path(const std::string& dir, int rank) {
  char name[32];
  std::snprintf(name, sizeof(name), "rank-%05d", rank);
  return fs::join(dir, name);
}

Beat Heartbeat::read(const std::string& path) {
  Beat b;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return b;
  char buf[kRecordBytes + 1] = {};
  const ssize_t n = ::pread(fd, buf, kRecordBytes, 0);
  ::close(fd);
  if (n <= 0) return b;
  char phase[64] = {};
  int waits = 0;
  int consumed = 0;
  if (std::sscanf(buf, "ddpm-heartbeat v1 seq=%" SCNu64 " iteration=%" SCNd64 " waits=%d phase=%63[^;];%n", &b.seq,
                  &b.iteration, &waits, phase, &consumed) == 4 &&
      consumed > 0) {
    b.valid = true;
    b.waits_for_others = waits != 0;
    b.phase = phase;
  }
  return b;
}

void Heartbeat::run() {
  try {
    fs::make_dirs(dir_);
  } catch (const std::exception&) {
    return;  // no heartbeat; diagnose() will find no files and say so
  }
  const std::string path = file_path(dir_, rank_);
  uint64_t seq = 0;
  std::unique_lock<std::mutex> lock(mu_);
  while (!shutdown_) {
    lock.unlock();
    Beat b = state_();
    b.seq = ++seq;
    write_record(path, b);  // a failed write only makes this rank look silent
    lock.lock();
    cv_.wait_for(lock, std::chrono::duration<double>(interval_s_), [this] { return shutdown_; });
  }
}

std::string Heartbeat::describe(const std::vector<Beat>& first, const std::vector<Beat>& second, int self) {
  std::vector<std::string> silent, busy;
  int silent_more = 0, busy_more = 0;
  for (size_t r = 0; r < second.size(); ++r) {
    if (static_cast<int>(r) == self) continue;
    const Beat& a = first[r];
    const Beat& b = second[r];
    if (!b.valid || (a.valid && a.seq == b.seq)) {
      if (silent.size() == kMaxNamed) {
        ++silent_more;
      } else {
        silent.push_back(b.valid ? cat("rank ", r, " stopped reporting (last in ", where(b), ")")
                                 : cat("rank ", r, " has no heartbeat"));
      }
    } else if (!b.waits_for_others) {
      if (busy.size() == kMaxNamed) {
        ++busy_more;
      } else {
        busy.push_back(cat("rank ", r, " is busy in ", where(b)));
      }
    }
  }
  std::string out;
  auto add = [&out](const std::string& s) { out += (out.empty() ? "" : "; ") + s; };
  for (const std::string& s : silent) add(s);
  if (silent_more) add(cat("and ", silent_more, " more ranks stopped reporting"));
  for (const std::string& s : busy) add(s);
  if (busy_more) add(cat("and ", busy_more, " more ranks are busy"));
  if (out.empty() && second.size() > 1) add("every other rank reports that it is waiting too");
  return out;
}

std::string Heartbeat::diagnose(double limit_s) const {
  // A detached thread with its own copies: on a hung file system it is abandoned (the
  // job is about to abort) and must not touch this object.
  auto task = std::make_shared<std::packaged_task<std::string()>>(
      [dir = dir_, world = world_size_, self = rank_, wait_s = 2.5 * interval_s_] {
        const std::vector<Beat> first = read_all(dir, world);
        std::this_thread::sleep_for(std::chrono::duration<double>(wait_s));
        return describe(first, read_all(dir, world), self);
      });
  std::future<std::string> result = task->get_future();
  std::thread([task] { (*task)(); }).detach();
  if (result.wait_for(std::chrono::duration<double>(limit_s)) != std::future_status::ready) return "";
  return result.get();
}

}  // namespace ddpm
