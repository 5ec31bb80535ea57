// Marks the stretches a thread spends inside a third-party library that allocates on
// the heap by itself: oneDNN's primitive execution (2.6 builds an execution context,
// a map of the arguments, on every call) and HDF5's reads (I/O state). ddpm
// cannot remove those; the marks let tests/mpi/test_step_allocations tell them from
// ddpm's own allocations, which a training step must not make. A mark costs an
// increment of a thread-local and two relaxed atomics.
#pragma once

#include <atomic>
#include <cstdint>

namespace ddpm {

enum class Library { kOneDnn, kHdf5, kCount };

namespace library_calls {
// Calls into each library open on this thread (nested marks add up).
inline thread_local int depth[static_cast<int>(Library::kCount)] = {};
// Calls into each library open on any thread: oneDNN runs its kernels on the OpenMP
// workers, whose allocations during a call are the library's too.
inline std::atomic<int> in_flight[static_cast<int>(Library::kCount)] = {};
// Calls into each library made so far, on all threads (the allocation test bounds
// oneDNN's allocations per call with it).
inline std::atomic<int64_t> entered[static_cast<int>(Library::kCount)] = {};
}  // namespace library_calls

// RAII: the calling thread is inside `library` for the scope's lifetime.
class LibraryCall {
 public:
  explicit LibraryCall(Library library) : index_(static_cast<int>(library)) {
    ++library_calls::depth[index_];
    library_calls::in_flight[index_].fetch_add(1, std::memory_order_relaxed);
    library_calls::entered[index_].fetch_add(1, std::memory_order_relaxed);
  }
  ~LibraryCall() {
    library_calls::in_flight[index_].fetch_sub(1, std::memory_order_relaxed);
    --library_calls::depth[index_];
  }
  LibraryCall(const LibraryCall&) = delete;
  LibraryCall& operator=(const LibraryCall&) = delete;

 private:
  int index_;
};

}  // namespace ddpm
