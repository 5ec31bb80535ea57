#include "dist/world.h"

#include <cstdio>
#include <cstdlib>

#include "core/common.h"

namespace ddpm {

void check_mpi(int rc, const char* call, const char* file, int line) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING] = {0};
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw Error(cat(file, ":", line, ": ", call, " failed: ", msg,
                  " (a rank died or the network failed; see the other ranks' messages)"));
}

World::World(int* argc, char*** argv) {
  int provided = MPI_THREAD_SINGLE;
  DDPM_CHECK_MPI(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided));
  thread_multiple_ = provided >= MPI_THREAD_MULTIPLE;
  // Errors come back as return codes (checked above) instead of aborting silently.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  DDPM_CHECK_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
  DDPM_CHECK_MPI(MPI_Comm_size(MPI_COMM_WORLD, &size_));
  MPI_Comm node;
  DDPM_CHECK_MPI(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
  DDPM_CHECK_MPI(MPI_Comm_rank(node, &local_rank_));
  DDPM_CHECK_MPI(MPI_Comm_size(node, &local_size_));
  MPI_Comm_free(&node);
}

World::~World() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

void World::barrier() const { DDPM_CHECK_MPI(MPI_Barrier(comm())); }

void World::broadcast(float* data, int64_t n, int root) const {
  constexpr int64_t kChunk = int64_t{1} << 28;  // MPI counts are int
  for (int64_t i = 0; i < n; i += kChunk) {
    DDPM_CHECK_MPI(MPI_Bcast(data + i, static_cast<int>(std::min(kChunk, n - i)), MPI_FLOAT, root, comm()));
  }
}

void World::broadcast(std::string* s, int root) const {
  int64_t len = static_cast<int64_t>(s->size());
  DDPM_CHECK_MPI(MPI_Bcast(&len, 1, MPI_INT64_T, root, comm()));
  s->resize(static_cast<size_t>(len));
  if (len > 0) DDPM_CHECK_MPI(MPI_Bcast(s->data(), static_cast<int>(len), MPI_CHAR, root, comm()));
}

void World::broadcast(int64_t* values, int n, int root) const {
  DDPM_CHECK_MPI(MPI_Bcast(values, n, MPI_INT64_T, root, comm()));
}

void World::sum(double* values, int n) const {
  DDPM_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, values, n, MPI_DOUBLE, MPI_SUM, comm()));
}

void World::sum(int64_t* values, int n) const {
  DDPM_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, values, n, MPI_INT64_T, MPI_SUM, comm()));
}

std::vector<int64_t> World::allgather(int64_t value) const {
  std::vector<int64_t> all(static_cast<size_t>(size_));
  DDPM_CHECK_MPI(MPI_Allgather(&value, 1, MPI_INT64_T, all.data(), 1, MPI_INT64_T, comm()));
  return all;
}

void World::gather(float* out, const float* in, int64_t n_per_rank) const {
  DDPM_CHECK_MPI(MPI_Gather(in, static_cast<int>(n_per_rank), MPI_FLOAT, out, static_cast<int>(n_per_rank),
                            MPI_FLOAT, 0, comm()));
}

void World::gather(uint8_t* out, const uint8_t* in, int64_t n_per_rank) const {
  DDPM_CHECK(n_per_rank < (int64_t{1} << 31), "gather block too large");
  DDPM_CHECK_MPI(MPI_Gather(in, static_cast<int>(n_per_rank), MPI_BYTE, out, static_cast<int>(n_per_rank), MPI_BYTE, 0,
                            comm()));
}

std::string World::agree_on_error(const std::string& my_error) const {
  int64_t failed_rank = my_error.empty() ? -1 : size_ - rank_;  // the maximum: the lowest failing rank wins
  DDPM_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, &failed_rank, 1, MPI_INT64_T, MPI_MAX, comm()));
  if (failed_rank < 0) return "";
  const int root = size_ - static_cast<int>(failed_rank);
  std::string message = my_error;
  broadcast(&message, root);
  return message;
}

void World::abort(int status, const std::string& message) const {
  std::fprintf(stderr, "%s\n", message.c_str());
  std::fflush(stderr);
  if (size_ == 1) std::_Exit(status);
  MPI_Abort(MPI_COMM_WORLD, status);
  std::_Exit(status);
}

void World::abort_agreed(int status, const std::string& message) const {
  if (is_root()) abort(status, message);
  // Rank 0's MPI_Abort ends this process; a barrier it never enters is where we wait.
  MPI_Barrier(comm());
  std::_Exit(status);
}

}  // namespace ddpm
