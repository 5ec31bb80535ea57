#!/usr/bin/env bash
# bench/step_profile.sh CONFIG BATCH [PRECISION]
# Where a training step's time goes on the CPU: one timed training step of
# build/bench/bench_unet under ONEDNN_VERBOSE, oneDNN's primitive times summed by kind
# (convolution forward / backward data / backward weights, matmul, reorder), and the
# rest of the step (GroupNorm, swish, attention's softmax, dropout, Adam + EMA, data
# movement) as the difference. PRECISION: fp32 (default) or bf16.
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: bench/step_profile.sh CONFIG BATCH [fp32|bf16]"
config=${1:?$usage}
batch=${2:?$usage}
precision=${3:-fp32}
threads=$(env -u OMP_NUM_THREADS nproc)
[ -x build/bench/bench_unet ] || { source launch/deps.sh; ddpm_build build >/dev/null; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Warm-up steps run without the verbose log; the last step is the one measured.
OMP_NUM_THREADS=$threads ONEDNN_VERBOSE=1 build/bench/bench_unet --config "$config" --batch "$batch" --steps 1 \
  --warmup 2 --mode train --precision "$precision" > "$log"
/usr/bin/python3 - "$log" "$batch" <<'PY'
import collections, re, sys

lines = open(sys.argv[1]).read().splitlines()
step_s = float(next(l for l in lines if l.startswith("train step:")).split()[2])
execs = [l.split(",") for l in lines if l.startswith("onednn_verbose,exec,cpu,")]
# The last step's primitives: everything after the last warm-up step, found by counting
# executions per step (the same sequence every step).
per_step = len(execs) // 3
last = execs[-per_step:]
by_kind = collections.defaultdict(float)
for f in last:
    prim, prop = f[3], f[5]
    kind = {"forward_training": "forward", "forward_inference": "forward", "backward_data": "backward data",
            "backward_weights": "backward weights", "undef": ""}.get(prop, prop)
    by_kind[f"{prim} {kind}".strip()] += float(f[-1]) / 1000.0
total = sum(by_kind.values())
print(f"one training step: {step_s * 1000:.0f} ms, {per_step} oneDNN primitive executions")
for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1]):
    print(f"  {k:<34} {v * 1000:8.1f} ms  {100 * v / step_s:5.1f}%")
print(f"  {'everything else (ddpm kernels)':<34} {(step_s - total) * 1000:8.1f} ms  {100 * (step_s - total) / step_s:5.1f}%")
PY
