// The run directory's lock: rank 0 holds an exclusive flock(2) on RUN_DIR/lock for the
// job's life, so a second job on the same directory (a Slurm requeue that starts while
// the old job is still finishing, a second submission) stops at once instead of
// overwriting checkpoints and interleaving metrics. The kernel drops the lock when the
// holder dies, however it dies, so a stale lock file never blocks a restart. On NFS,
// flock is forwarded to the server's byte-range locks (Linux >= 2.6.12); Lustre needs
// the `flock` mount option (docs/operations.md).
#pragma once

#include <string>

namespace ddpm {

class RunDirLock {
 public:
  // Takes the lock of `run_dir` (which must exist) or throws an InputError naming the
  // holder (host, pid, start time) as it wrote itself into the lock file.
  explicit RunDirLock(const std::string& run_dir);
  ~RunDirLock();
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace ddpm
