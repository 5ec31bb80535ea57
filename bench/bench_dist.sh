#!/usr/bin/env bash
# The distributed-training benchmark of bench/results/dist.md:
#  1. the demo config (MNIST 32x32 U-Net, global batch 32) on 1 rank and on 2 ranks, one
#     CPU thread per rank, with one all-reduce bucket (nothing to overlap) and with small
#     buckets, in both overlap modes: time per step and the all-reduce time backward hid;
#  2. the 256x256 model (configs/celebahq256.yaml): one measured CPU step for the gradient
#     readiness profile, then the estimate for 8..64 GPUs at two network bandwidths.
#   bash bench/bench_dist.sh [BUILD_DIR]      (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
bench="$build/bench/bench_dist"
mpi=(mpirun --oversubscribe -x OMP_NUM_THREADS=1 -x OMP_WAIT_POLICY=passive)
[ "$(id -u)" -eq 0 ] && mpi+=(--allow-run-as-root)
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive

echo "== demo config, global batch 32 =="
"${mpi[@]}" -np 1 "$bench" --config configs/demo.yaml --batch 32 --steps 10 --warmup 2
for mode in thread nonblocking; do
  for bucket in 25 1 0.25; do
    "${mpi[@]}" -np 2 "$bench" --config configs/demo.yaml --batch 32 --steps 10 --warmup 2 --mode "$mode" \
      --bucket-mb "$bucket"
  done
done

echo "== 256x256 model: readiness profile (CPU, batch 1) and the 64-GPU estimate =="
for bandwidth in 20 50; do
  OMP_NUM_THREADS="$(nproc --all)" "$bench" --config configs/celebahq256.yaml --batch 1 --steps 1 --warmup 1 \
    --threads "$(nproc --all)" --estimate-ranks 1,8,16,32,64 --estimate-batch 64 --bandwidth-gbs "$bandwidth"
done
