#!/usr/bin/env bash
# bench/vs_pytorch.sh CONFIG BATCH [STEPS]
# Times ddpm's training step and forward pass against the same model, batch and step
# in PyTorch (Debian's python3-torch) on this machine, one after the other, in fp32 and
# in bf16, and reports each side's peak resident memory. Ends with the line
#   train_ratio=R forward_ratio=R bf16_train_ratio=R
# (ours over PyTorch; > 1 means faster): fp32 against fp32, and ddpm's bf16 against
# PyTorch's best, which is its bf16 autocast where that runs this model and its fp32
# otherwise (PyTorch 1.13's CPU autocast fails in GroupNorm; the script says which).
# PyTorch gets its best CPU settings here: 2 intra-op threads (one per core),
# denormals flushed, OpenBLAS single-threaded under torch's own threads (Debian's
# reference BLAS is replaced by OpenBLAS, see launch/deps.sh).
# Peak memory at the 256x256 size of issue 13: bash bench/vs_pytorch.sh configs/celebahq256.yaml 2 1
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: bench/vs_pytorch.sh CONFIG BATCH [STEPS]"
config=${1:?$usage}
batch=${2:?$usage}
steps=${3:-5}
threads=$(env -u OMP_NUM_THREADS nproc)
source launch/deps.sh
ddpm_ensure_packages --with-tests
[ -x build/bench/bench_unet ] || ddpm_build build >/dev/null
blas=$(update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | awk '/^Value:/{print $2}')
flags=$(grep -o -w -E 'amx_bf16|avx512_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')
echo "machine: $(lscpu | awk -F: '/Model name/{gsub(/^ +/,"",$2); print $2}'), $threads cores, bf16 flags: ${flags:-none}; BLAS for torch: ${blas:-unknown}"

# Each run's lines go to stderr as well (not through `tee /dev/stderr`, which reopens
# and truncates a log file that stderr is redirected to).
show() { local out; out=$("$@"); echo "$out" >&2; grep '^RESULT' <<<"$out"; }
ours() {
  show env OMP_NUM_THREADS="$threads" build/bench/bench_unet --config "$config" --batch "$batch" --steps "$steps" \
    --precision "$1"
}
theirs() {
  show env OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS="$threads" /usr/bin/python3 bench/torch_unet.py --config "$config" \
    --batch "$batch" --steps "$steps" --threads "$threads" --precision "$1"
}
isa=$(OMP_NUM_THREADS=$threads build/bench/bench_unet --config "$config" --batch 1 --steps 1 --warmup 0 --mode forward \
  | sed -n 's/.*oneDNN ISA \([a-z0-9_]*\).*/\1/p')
ours_fp32=$(ours fp32)
theirs_fp32=$(theirs fp32)
ours_bf16=$(ours bf16)
theirs_bf16=$(theirs bf16)

/usr/bin/python3 - "$isa" "$ours_fp32" "$theirs_fp32" "$ours_bf16" "$theirs_bf16" <<'PY'
import sys

isa = sys.argv[1]
ours_fp32, theirs_fp32, ours_bf16, theirs_bf16 = (
    dict(kv.split("=", 1) for kv in line.split()[1:]) for line in sys.argv[2:])
f = lambda r, k: float(r[k])
print(f"oneDNN ISA: {isa}; ddpm bf16 ran as {ours_bf16['precision']}")
print(f"fp32 img/s  train: ddpm {f(ours_fp32, 'train_img_s'):.2f}  pytorch {f(theirs_fp32, 'train_img_s'):.2f}"
      f"    forward: ddpm {f(ours_fp32, 'forward_img_s'):.2f}  pytorch {f(theirs_fp32, 'forward_img_s'):.2f}")
if theirs_bf16.get("bf16_failed") == "1":
    best, best_name = theirs_fp32, "fp32 (its bf16 autocast fails on this model)"
else:
    best, best_name = max((theirs_fp32, "fp32"), (theirs_bf16, "bf16 autocast"), key=lambda b: f(b[0], "train_img_s"))
print(f"bf16 img/s  train: ddpm {f(ours_bf16, 'train_img_s'):.2f}  pytorch's best, {best_name}: "
      f"{f(best, 'train_img_s'):.2f}    forward: ddpm {f(ours_bf16, 'forward_img_s'):.2f}")
print(f"peak memory (MB, resident): ddpm fp32 {f(ours_fp32, 'peak_rss_mb'):.0f}  bf16 {f(ours_bf16, 'peak_rss_mb'):.0f}"
      f"  pytorch fp32 {f(theirs_fp32, 'peak_rss_mb'):.0f}"
      f"  memory_ratio={f(ours_fp32, 'peak_rss_mb') / f(theirs_fp32, 'peak_rss_mb'):.2f} (ours/PyTorch)")
print(f"train_ratio={f(ours_fp32, 'train_img_s') / f(theirs_fp32, 'train_img_s'):.2f} "
      f"forward_ratio={f(ours_fp32, 'forward_img_s') / f(theirs_fp32, 'forward_img_s'):.2f} "
      f"bf16_train_ratio={f(ours_bf16, 'train_img_s') / f(best, 'train_img_s'):.2f}")
PY
