#include "train/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "core/common.h"
#include "core/fs.h"

namespace ddpm {
namespace {

std::string holder_text() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) std::strcpy(host, "?");
  char when[64];
  const std::time_t now = std::time(nullptr);
  std::strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %Z", std::localtime(&now));
  return cat("host ", host, ", pid ", getpid(), ", started ", when);
}

std::string read_holder(int fd) {
  char buf[512] = {0};
  const ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
  std::string s(buf, n > 0 ? static_cast<size_t>(n) : 0);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\0')) s.pop_back();
  return s.empty() ? "a job that has not written its name yet" : s;
}

}  // namespace

RunDirLock::RunDirLock(const std::string& run_dir) {
  const std::string path = fs::join(run_dir, "lock");
  fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) input_error(path, ": cannot open the run directory's lock file: ", std::strerror(errno));
  if (flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    const std::string holder = err == EWOULDBLOCK ? read_holder(fd_) : "";
    close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK) input_error(run_dir, ": another job is using this run directory (", holder, ")");
    input_error(path, ": cannot lock the run directory: ", std::strerror(err),
                " (on Lustre, mount with -o flock; see docs/operations.md)");
  }
  // The holder's name, for the error a second job prints; best effort (the lock holds
  // whether or not it could be written). Rewritten by every holder, read only while
  // locked, so it needs no commit protocol.
  const std::string text = holder_text() + "\n";
  if (ftruncate(fd_, 0) == 0) (void)!pwrite(fd_, text.data(), text.size(), 0);
}

RunDirLock::~RunDirLock() {
  if (fd_ >= 0) close(fd_);  // releases the lock
}

}  // namespace ddpm
