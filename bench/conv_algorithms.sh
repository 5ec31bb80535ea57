#!/usr/bin/env bash
# bench/conv_algorithms.sh CONFIG BATCH [STEPS]
# The CPU's 3x3 convolutions through oneDNN's Winograd kernels (device.winograd: true,
# the default; core/cpu/conv2d_winograd.h) against its direct kernels everywhere
# (--no-winograd), the same model and batch, alternating twice so that a busy machine
# hurts both sides alike. Ends with the line
#   winograd_train_ratio=R winograd_forward_ratio=R
# (Winograd over direct, the better of each side's two runs; > 1 means faster).
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: bench/conv_algorithms.sh CONFIG BATCH [STEPS]"
config=${1:?$usage}
batch=${2:?$usage}
steps=${3:-3}
threads=$(env -u OMP_NUM_THREADS nproc)
[ -x build/bench/bench_unet ] || { source launch/deps.sh; ddpm_build build >/dev/null; }
flags=$(grep -o -w -E 'amx_bf16|avx512_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')
echo "machine: $(lscpu | awk -F: '/Model name/{gsub(/^ +/,"",$2); print $2}'), $threads cores, bf16 flags: ${flags:-none}"
run() {
  OMP_NUM_THREADS=$threads build/bench/bench_unet --config "$config" --batch "$batch" --steps "$steps" --warmup 1 "$@" |
    grep '^RESULT'
}
results=()
for round in 1 2; do
  for side in winograd direct; do
    if [ $side = winograd ]; then r=$(run); else r=$(run --no-winograd); fi
    echo "$side (round $round): $r"
    results+=("$side $r")
  done
done
printf '%s\n' "${results[@]}" | /usr/bin/python3 -c '
import re, sys
best = {}
for line in sys.stdin:
    side = line.split()[0]
    v = dict(re.findall(r"(\w+)=([0-9.]+)", line))
    for k in ("train_img_s", "forward_img_s"):
        best[(side, k)] = max(best.get((side, k), 0.0), float(v[k]))
for k in ("train_img_s", "forward_img_s"):
    print("%s: winograd %.3f, direct %.3f" % (k, best[("winograd", k)], best[("direct", k)]))
print("winograd_train_ratio=%.2f winograd_forward_ratio=%.2f" % (
    best[("winograd", "train_img_s")] / best[("direct", "train_img_s")],
    best[("winograd", "forward_img_s")] / best[("direct", "forward_img_s")]))
'
