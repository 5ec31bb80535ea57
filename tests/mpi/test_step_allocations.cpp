// Issue 11: a training step on the CPU allocates nothing on the heap. The test replaces
// the process's allocator with a counting one — glibc's malloc family (defined here,
// forwarding to __libc_malloc and friends; by ELF interposition they serve every
// library) and the global operator new/delete overloads on top of it — builds the
// real TrainStep on a World of one (MPI singleton init), runs warm-up steps, then counts
// every allocation made on any thread during further steps.
//
// What is counted, and as whose:
//  - oneDNN: allocations on a thread inside CpuOps::run_primitive (core/library_calls.h
//    marks it), and on OpenMP worker threads while any such call is in flight. oneDNN
//    2.6's dnnl_primitive_execute builds an execution context (an unordered_map of the
//    arguments: a bucket array and one node per argument, and the context itself) on
//    every call, before any kernel runs, which ddpm cannot avoid through the library's
//    API. The test bounds that count per call (kOneDnnPerExecute), so an allocation that
//    grows with the work (a kernel's buffers, a scratchpad oneDNN allocates because a
//    primitive was built without the user scratchpad) fails it.
//  - HDF5: allocations on a thread inside ShardReader::read_image's H5Dread (the loader's
//    prefetch thread), reported likewise.
//  - ddpm: everything else on every thread (the step, the loader's prefetch thread, the
//    watchdog, OpenMP workers outside oneDNN calls, MPI): must be zero.
// Not counted: mmap/brk made by the allocator itself or by a library directly, and the
// heartbeat thread, which a world of one does not start (it writes its file on a clock,
// not per step).
#define BOOST_TEST_MODULE step_allocations
#include <execinfo.h>
#include <malloc.h>
#include <omp.h>

#include <atomic>
#include <boost/test/unit_test.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <new>

#include "core/config.h"
#include "core/library_calls.h"
#include "fixtures.h"
#include "one_rank_training.h"

extern "C" {
void* __libc_malloc(size_t size);
void* __libc_calloc(size_t n, size_t size);
void* __libc_realloc(void* p, size_t size);
void* __libc_memalign(size_t alignment, size_t size);
void __libc_free(void* p);
}

namespace {

struct AllocationCounts {
  std::atomic<bool> counting{false};
  std::atomic<int64_t> ddpm{0}, onednn{0}, hdf5{0};
  // Where ddpm's first few counted allocations came from (symbolised after counting).
  static constexpr int kSites = 4, kFrames = 24;
  void* frames[kSites][kFrames] = {};
  int depth[kSites] = {};
  std::atomic<int> sites_taken{0};
};
AllocationCounts g_counts;
thread_local bool t_in_hook = false;  // backtrace() itself allocates: do not recurse

bool inside(ddpm::Library library) { return ddpm::library_calls::depth[static_cast<int>(library)] > 0; }
bool onednn_on_any_thread() {
  return ddpm::library_calls::in_flight[static_cast<int>(ddpm::Library::kOneDnn)].load(std::memory_order_relaxed) >
         0;
}

void note_allocation() {
  if (!g_counts.counting.load(std::memory_order_relaxed) || t_in_hook) return;
  if (inside(ddpm::Library::kOneDnn) || (omp_get_thread_num() > 0 && onednn_on_any_thread())) {
    g_counts.onednn.fetch_add(1, std::memory_order_relaxed);
  } else if (inside(ddpm::Library::kHdf5)) {
    g_counts.hdf5.fetch_add(1, std::memory_order_relaxed);
  } else {
    g_counts.ddpm.fetch_add(1, std::memory_order_relaxed);
    const int site = g_counts.sites_taken.fetch_add(1);
    if (site < AllocationCounts::kSites) {
      t_in_hook = true;
      g_counts.depth[site] = backtrace(g_counts.frames[site], AllocationCounts::kFrames);
      t_in_hook = false;
    }
  }
}

void* aligned(size_t alignment, size_t size) {
  note_allocation();
  return __libc_memalign(alignment, size);
}

}  // namespace

// ---- glibc's allocation entry points, counted and forwarded

extern "C" {
void* malloc(size_t size) {
  note_allocation();
  return __libc_malloc(size);
}
void* calloc(size_t n, size_t size) {
  note_allocation();
  return __libc_calloc(n, size);
}
void* realloc(void* p, size_t size) {
  if (size > 0) note_allocation();  // realloc(p, 0) frees
  return __libc_realloc(p, size);
}
void free(void* p) { __libc_free(p); }
void* memalign(size_t alignment, size_t size) { return aligned(alignment, size); }
void* aligned_alloc(size_t alignment, size_t size) { return aligned(alignment, size); }
int posix_memalign(void** out, size_t alignment, size_t size) {
  if (alignment < sizeof(void*) || (alignment & (alignment - 1)) != 0) return EINVAL;
  void* p = aligned(alignment, size);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}
void* valloc(size_t size) { return aligned(4096, size); }
}

// ---- operator new/delete on top (libstdc++'s would reach malloc anyway: these make the
// test independent of how it is built)

namespace {
void* new_or_throw(size_t size, size_t alignment) {
  void* p = alignment <= alignof(std::max_align_t) ? malloc(size ? size : 1) : aligned(alignment, size ? size : 1);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
}  // namespace

void* operator new(size_t size) { return new_or_throw(size, 0); }
void* operator new[](size_t size) { return new_or_throw(size, 0); }
void* operator new(size_t size, std::align_val_t a) { return new_or_throw(size, static_cast<size_t>(a)); }
void* operator new[](size_t size, std::align_val_t a) { return new_or_throw(size, static_cast<size_t>(a)); }
void* operator new(size_t size, const std::nothrow_t&) noexcept { return malloc(size ? size : 1); }
void* operator new[](size_t size, const std::nothrow_t&) noexcept { return malloc(size ? size : 1); }
void* operator new(size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
  return aligned(static_cast<size_t>(a), size ? size : 1);
}
void* operator new[](size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
  return aligned(static_cast<size_t>(a), size ? size : 1);
}
void operator delete(void* p) noexcept { free(p); }
void operator delete[](void* p) noexcept { free(p); }
void operator delete(void* p, size_t) noexcept { free(p); }
void operator delete[](void* p, size_t) noexcept { free(p); }
void operator delete(void* p, std::align_val_t) noexcept { free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { free(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { free(p); }

namespace ddpm {
namespace {

// 12 images with a global batch of 4: a new epoch every 3 steps, so the counted steps
// cross epochs (the loader's permutations) as well as shards.
constexpr int kImages = 12;
constexpr int kWarmupSteps = 8;
constexpr int kCountedSteps = 6;
// oneDNN's allocations per dnnl_primitive_execute: the argument map's bucket array, one
// node for each of at most 5 arguments (a convolution's backward-weights call) and the
// execution context.
constexpr int64_t kOneDnnPerExecute = 7;

// The recorded call stacks (addr2line -f -C -e <this test> turns the offsets into names).
std::string allocation_sites() {
  std::string where;
  const int sites = std::min(g_counts.sites_taken.load(), AllocationCounts::kSites);
  for (int s = 0; s < sites; ++s) {
    where += "\nallocation " + std::to_string(s + 1) + ":";
    char** names = backtrace_symbols(g_counts.frames[s], g_counts.depth[s]);
    for (int i = 0; names != nullptr && i < g_counts.depth[s]; ++i) where += std::string("\n  ") + names[i];
    std::free(names);
  }
  return where;
}

}  // namespace

// Counts the allocations of kCountedSteps training steps of the tiny config in
// `precision` (device.precision) and checks them.
void count_step_allocations(const std::string& precision) {
  boost::unit_test::unit_test_log.set_threshold_level(boost::unit_test::log_messages);
  void* warm[1];
  backtrace(warm, 1);  // loads libgcc's unwinder now, not inside the hook
  g_counts.ddpm = 0, g_counts.onednn = 0, g_counts.hdf5 = 0, g_counts.sites_taken = 0;

  testing::TempDir dir;
  testing::write_synthetic_dataset(dir / "ds", kImages, data::ImageShape{16, 16, 3}, 2);
  const Config cfg =
      load_config(DDPM_SOURCE_DIR "/configs/tiny.yaml", {"data.path=" + dir / "ds", "device.precision=" + precision});
  // Two OpenMP threads, so that the workers' allocations are seen and attributed too.
  testing::OneRankTraining run(cfg, 2);
  TrainStep& step = *run.step;
  const int local_batch = cfg.train.batch_size;
  const Ops* ops = run.ops.get();

  TrainState state;
  for (int i = 0; i < kWarmupSteps; ++i) BOOST_REQUIRE(step.run(state).applied);
  const auto& onednn_calls = library_calls::entered[static_cast<int>(Library::kOneDnn)];
  const int64_t calls_before = onednn_calls.load();
  g_counts.counting = true;
  for (int i = 0; i < kCountedSteps; ++i) step.run(state);
  g_counts.counting = false;
  const int64_t onednn_executes = onednn_calls.load() - calls_before;

  BOOST_TEST_MESSAGE("allocations per training step (tiny config, " << precision_name(ops->precision()) << ", batch "
                     << local_batch << ", " << kCountedSteps << " steps counted): ddpm "
                     << static_cast<double>(g_counts.ddpm) / kCountedSteps << ", oneDNN "
                     << static_cast<double>(g_counts.onednn) / kCountedSteps << " in "
                     << static_cast<double>(onednn_executes) / kCountedSteps << " primitive executions, HDF5 "
                     << static_cast<double>(g_counts.hdf5) / kCountedSteps);
  BOOST_TEST(g_counts.ddpm == 0, "ddpm's own code allocated " << g_counts.ddpm << " times in " << kCountedSteps
                                                              << " steps; the first from:" << allocation_sites());
  BOOST_TEST(onednn_executes > 0);
  BOOST_TEST(g_counts.onednn <= kOneDnnPerExecute * onednn_executes,
             "oneDNN allocated " << g_counts.onednn << " times in " << onednn_executes
                                 << " primitive executions: more than its argument maps account for");
}

BOOST_AUTO_TEST_CASE(a_training_step_allocates_nothing_of_its_own) { count_step_allocations("fp32"); }

// bf16 adds the products' bf16 copies, which live in scratch slots too (on a CPU without
// bf16 the backend runs fp32, and the case repeats the first).
BOOST_AUTO_TEST_CASE(a_bf16_training_step_allocates_nothing_of_its_own) { count_step_allocations("bf16"); }

}  // namespace ddpm
