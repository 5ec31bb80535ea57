// The MPI world: initialised once per process, with the thread level the gradient
// all-reduce needs (its communication thread calls MPI while the main thread runs
// backward). Checked calls name the file, line and MPI's own message.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ddpm {

class World {
 public:
  // MPI_Init_thread (MPI_THREAD_MULTIPLE when the library offers it). A process that was
  // not started by mpirun is a world of one.
  World(int* argc, char*** argv);
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }
  int local_rank() const { return local_rank_; }  // rank among the processes of this node
  int local_size() const { return local_size_; }
  bool thread_multiple() const { return thread_multiple_; }
  MPI_Comm comm() const { return MPI_COMM_WORLD; }

  void barrier() const;
  void broadcast(float* data, int64_t n, int root = 0) const;
  void broadcast(std::string* s, int root = 0) const;
  void broadcast(int64_t* values, int n, int root = 0) const;
  // Sums over ranks, in place.
  void sum(double* values, int n) const;
  void sum(int64_t* values, int n) const;
  // Every rank's value, in rank order, on every rank.
  std::vector<int64_t> allgather(int64_t value) const;
  // Gathers equal-sized float blocks to rank 0 (out is only written there).
  void gather(float* out, const float* in, int64_t n_per_rank) const;
  void gather(uint8_t* out, const uint8_t* in, int64_t n_per_rank) const;

  // Every rank reports whether it failed and why; all ranks learn the first failure (by
  // rank), so a bad input found on any rank stops every rank with the same message.
  // Returns "" when all succeeded.
  std::string agree_on_error(const std::string& my_error) const;

  // Ends the whole job from one rank: prints `message` once and aborts every rank.
  // Callable from any thread (the watchdog's).
  [[noreturn]] void abort(int status, const std::string& message) const;
  // The same for a verdict every rank reached together (a collective decision): rank 0
  // prints and aborts, the others wait to be ended by it, so the message appears once.
  [[noreturn]] void abort_agreed(int status, const std::string& message) const;

 private:
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  bool thread_multiple_ = false;
};

void check_mpi(int rc, const char* call, const char* file, int line);

}  // namespace ddpm

#define DDPM_CHECK_MPI(call) ::ddpm::check_mpi((call), #call, __FILE__, __LINE__)
