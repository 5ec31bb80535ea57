#!/usr/bin/env bash
# bench/vs_pytorch.sh CONFIG BATCH [STEPS]
# Times ddpm's training step and forward pass against the same model, batch and step
# in PyTorch (Debian's python3-torch) on this machine, one after the other, and ends
# with the line `train_ratio=R forward_ratio=R` (ours over PyTorch; > 1 means faster).
# PyTorch gets its best CPU settings here: 2 intra-op threads (one per core),
# denormals flushed, OpenBLAS single-threaded under torch's own threads (Debian's
# reference BLAS is replaced by OpenBLAS, see launch/deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:?usage: bench/vs_pytorch.sh CONFIG BATCH [STEPS]}
batch=${2:?usage: bench/vs_pytorch.sh CONFIG BATCH [STEPS]}
steps=${3:-5}
threads=$(nproc)
source launch/deps.sh
ddpm_ensure_packages --with-tests
[ -x build/bench/bench_unet ] || ddpm_build build >/dev/null
blas=$(update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | awk '/^Value:/{print $2}')
echo "machine: $(lscpu | awk -F: '/Model name/{gsub(/^ +/,"",$2); print $2}'), $threads cores; BLAS for torch: ${blas:-unknown}"

ours=$(OMP_NUM_THREADS=$threads build/bench/bench_unet --config "$config" --batch "$batch" --steps "$steps" | tee /dev/stderr | grep '^RESULT')
theirs=$(OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=$threads /usr/bin/python3 bench/torch_unet.py --config "$config" \
  --batch "$batch" --steps "$steps" --threads "$threads" | tee /dev/stderr | grep '^RESULT')

value() { echo "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1==k{print $2}'; }
/usr/bin/python3 - "$(value "$ours" train_img_s)" "$(value "$theirs" train_img_s)" \
  "$(value "$ours" forward_img_s)" "$(value "$theirs" forward_img_s)" <<'PY'
import sys
ot, tt, of, tf = map(float, sys.argv[1:])
print(f"img/s train: ddpm {ot:.2f}  pytorch {tt:.2f}    forward: ddpm {of:.2f}  pytorch {tf:.2f}")
print(f"train_ratio={ot / tt:.2f} forward_ratio={of / tf:.2f}")
PY
