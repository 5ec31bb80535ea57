#!/usr/bin/env bash
# Fuzzes every parser that reads outside input (tests/fuzz, docs/testing.md) with
# libFuzzer under ASan + UBSan, each harness for SECONDS, two at a time (one per core),
# and prints per target: executions, coverage, corpus size, findings.
#   bash bench/fuzz.sh [SECONDS] [TARGET...]     default 60 s, every harness
#   bash bench/fuzz.sh --seeds                   rewrite tests/fuzz/corpus with the
#                                                project's writers (fuzz_make_seeds)
# Environment: DDPM_FUZZ_BUILD (default build-fuzz), DDPM_FUZZ_JOBS (default nproc).
# A finding (crash, sanitizer report, leak, a hang over 5 s, over 4 GB) is kept under
# $DDPM_FUZZ_BUILD/fuzz-artifacts/TARGET/ and the script exits 1; add the input to
# tests/fuzz/corpus/TARGET/ once it is fixed, so the fuzz ctests replay it.
# New corpus entries accumulate in $DDPM_FUZZ_BUILD/fuzz-work/TARGET between runs.
set -uo pipefail
cd "$(dirname "$0")/.."
source launch/deps.sh
build=${DDPM_FUZZ_BUILD:-build-fuzz}
jobs=${DDPM_FUZZ_JOBS:-$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)}
targets_all=(fuzz_config fuzz_manifest fuzz_shard fuzz_checkpoint fuzz_decode fuzz_cifar10 fuzz_mnist fuzz_lsun fuzz_npz)

ddpm_ensure_packages --with-tests || exit 1
CC=clang-14 CXX=clang++-14 ddpm_configure "$build" -DDDPM_CUDA=OFF -DDDPM_BUILD_BENCH=OFF \
  -DDDPM_SANITIZE=address,undefined -DDDPM_FUZZ=ON || exit 2
cmake --build "$build" -j "$(env -u OMP_NUM_THREADS nproc)" --target fuzz_all fuzz_make_seeds >"$build/fuzz-build.log" 2>&1 || {
  tail -20 "$build/fuzz-build.log"; echo "fuzz.sh: build failed (log: $build/fuzz-build.log)" >&2; exit 1; }

if [ "${1:-}" = "--seeds" ]; then
  rm -rf tests/fuzz/corpus.new
  "$build/tests/fuzz/fuzz_make_seeds" tests/fuzz/corpus.new || exit 1
  for d in tests/fuzz/corpus.new/*; do  # keep regression inputs (regression-*) already there
    t=$(basename "$d"); mkdir -p "tests/fuzz/corpus/$t"; cp "$d"/* "tests/fuzz/corpus/$t/"
  done
  rm -rf tests/fuzz/corpus.new
  exit 0
fi

seconds=${1:-60}
[ $# -gt 0 ] && shift
case "$seconds" in ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, got '$seconds'" >&2; exit 2 ;; esac
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${targets_all[@]}")

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/sanitizers/lsan.supp}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=1

run_one() {
  local t=$1 work="$build/fuzz-work/$1" art="$build/fuzz-artifacts/$1" log="$build/fuzz-logs/$1.log"
  mkdir -p "$work" "$art" "$(dirname "$log")"
  # -timeout 5: an input running over 5 s is a hang; -rss_limit_mb: over 4 GB is a finding.
  "$build/tests/fuzz/$t" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$art/" "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1
}

echo "fuzzing ${#targets[@]} harness(es), ${seconds} s each, $jobs at a time, ASan + UBSan ($build)"
running=0
for t in "${targets[@]}"; do
  [ -x "$build/tests/fuzz/$t" ] || { echo "fuzz.sh: no harness $t" >&2; exit 2; }
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then wait -n; running=$((running - 1)); fi
done
wait

status=0
printf '%-16s %12s %8s %8s %8s  %s\n' target executions exec/s cov corpus findings
for t in "${targets[@]}"; do
  log="$build/fuzz-logs/$t.log"
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}' | tail -1)
  rate=$(( ${execs:-0} / (seconds > 0 ? seconds : 1) ))
  cov=$(grep -o 'cov: [0-9]*' "$log" | awk '{print $2}' | tail -1)
  corpus=$(find "$build/fuzz-work/$t" -type f | wc -l)
  findings=$(find "$build/fuzz-artifacts/$t" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
    -o -name 'oom-*' -o -name 'slow-unit-*' \) | wc -l)
  what="none"
  if [ "$findings" -gt 0 ] || [ -z "$execs" ]; then
    status=1
    what="$findings in $build/fuzz-artifacts/$t/ ($(grep -m1 -o -E 'ERROR: [A-Za-z]+: [^ ]*|SUMMARY: .*|fuzz: .*' "$log" | head -1)); log $log"
  fi
  printf '%-16s %12s %8s %8s %8s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$corpus" "$what"
done
exit $status
