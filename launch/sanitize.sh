#!/usr/bin/env bash
# The sanitizer pass of CI, run by .ci/run after the README's test command (docs/
# testing.md). Any sanitizer report fails it: every sanitizer halts on its first report.
#   asan   clang build with ASan + UBSan + libFuzzer instrumentation (build-asan): the
#          unit tests (src/data included), every fuzz harness over its committed corpus,
#          then bench/fuzz.sh for DDPM_SANITIZE_FUZZ_SECONDS (default 20) per harness
#   tsan   clang build with TSan (build-tsan): the tests of the threads ddpm starts
#          (loader prefetch, checkpoint writer, heartbeat, watchdog, signal thread,
#          prepare's decoders, the all-reduce's communication thread on 3 ranks)
#   bash launch/sanitize.sh [asan|tsan]...    default: both
set -euo pipefail
cd "$(dirname "$0")/.."
source launch/deps.sh
ddpm_ensure_packages --with-tests
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(asan tsan)

cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # nproc obeys OMP_NUM_THREADS
export OMP_NUM_THREADS=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export LSAN_OPTIONS=suppressions=$PWD/tests/sanitizers/lsan.supp
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/sanitizers/tsan.supp"
clang_build() { CC=clang-14 CXX=clang++-14 ddpm_configure "$@" -DDDPM_CUDA=OFF -DDDPM_BUILD_BENCH=OFF; }
timed() { local start=$SECONDS; "$@"; echo "sanitize.sh: '$*' took $((SECONDS - start)) s"; }

run_asan() {
  clang_build build-asan -DDDPM_SANITIZE=address,undefined -DDDPM_FUZZ=ON
  timed cmake --build build-asan -j "$cores"
  # test_step_allocations replaces malloc with its own counting one, which ASan's
  # allocator cannot coexist with; it runs in the normal suite. test_golden_train starts
  # MPI (a world of one): Open MPI 4.1 unloads the components that hold its own
  # allocations at MPI_Finalize, so LSan reports them from unknown modules that no
  # suppression can name; it runs with ASan and UBSan but without the leak check.
  timed ctest --test-dir build-asan --output-on-failure -j "$cores" -L 'unit|fuzz' \
    -E 'test_step_allocations|test_golden_train'
  ASAN_OPTIONS=$ASAN_OPTIONS:detect_leaks=0 timed ctest --test-dir build-asan --output-on-failure \
    -R '^test_golden_train$'
  DDPM_FUZZ_BUILD=build-asan timed bash bench/fuzz.sh "${DDPM_SANITIZE_FUZZ_SECONDS:-20}"
}

run_tsan() {
  clang_build build-tsan -DDDPM_SANITIZE=thread
  local tests=(test_dist_units test_data_loader test_data_importers test_allreduce)
  timed cmake --build build-tsan -j "$cores" --target "${tests[@]}"
  local t
  for t in test_dist_units test_data_loader test_data_importers; do
    timed "$(find build-tsan/tests -name "$t" -type f -perm -u+x | head -1)"
  done
  timed mpirun --oversubscribe --allow-run-as-root -np 3 -x OMP_NUM_THREADS -x TSAN_OPTIONS \
    build-tsan/tests/mpi/test_allreduce
}

for part in "${parts[@]}"; do
  case "$part" in
    asan) run_asan ;;
    tsan) run_tsan ;;
    *) echo "sanitize.sh: unknown part '$part' (asan or tsan)" >&2; exit 2 ;;
  esac
done
echo "sanitize.sh: ${parts[*]}: no sanitizer report"
