#!/usr/bin/env bash
# bench/inception_vs_pytorch.sh [IMAGES] [BATCH]
# Inception feature extraction (FID's pool_3, from uint8 32x32 images through the resize
# to 299) in ddpm (`ddpm_eval fid --save-stats`, CPU) against PyTorch running the same
# network with the same weights (tests/reference/inception_ref.py, random weights with
# calibrated BatchNorm) on the same machine, one after the other. PyTorch gets its best
# CPU settings (2 intra-op threads, OpenBLAS single-threaded, channels_last, no_grad,
# BatchNorm folded by its eval mode into the convolution's kernel call). Ends with the
# line `inception_ratio=R` (ddpm img/s over PyTorch's; > 1 means faster).
set -euo pipefail
cd "$(dirname "$0")/.."
images=${1:-100}
batch=${2:-50}
threads=$(env -u OMP_NUM_THREADS nproc)
source launch/deps.sh
ddpm_ensure_packages --with-tests
[ -x build/src/apps/ddpm_eval ] || ddpm_build build >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "machine: $(lscpu | awk -F: '/Model name/{gsub(/^ +/,"",$2); print $2}'), $threads cores, oneDNN ISA and bf16 flags: $(grep -o -w -E 'amx_bf16|avx512_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
OPENBLAS_NUM_THREADS=1 /usr/bin/python3 - "$work" "$images" <<'PY'
import os, sys
import numpy as np
import torch
sys.path.insert(0, os.path.join(os.getcwd(), "tests", "reference"))
import inception_ref
work, n = sys.argv[1], int(sys.argv[2])
net = inception_ref.FidInception().eval()
inception_ref.random_weights(net, seed=3)
torch.save(inception_ref.pytorch_fid_state_dict(net), os.path.join(work, "inception.pth"))
rng = np.random.default_rng(0)
np.savez(os.path.join(work, "images.npz"), arr_0=rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8))
PY
/usr/bin/python3 tools/convert_inception.py "$work/inception.pth" "$work/inception.h5" > /dev/null
ours=$(OMP_NUM_THREADS=$threads build/src/apps/ddpm_eval fid --save-stats "$work/images.npz" "$work/stats.npz" \
  --inception "$work/inception.h5" --batch "$batch" --resize torch 2>&1 >/dev/null | tr '\r' '\n' | tail -1)
echo "ddpm:    $ours"
theirs=$(OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=$threads /usr/bin/python3 - "$work" "$batch" "$threads" <<'PY'
import os, sys, time
import numpy as np
import torch
import torch.nn.functional as F
sys.path.insert(0, os.path.join(os.getcwd(), "tests", "reference"))
import inception_ref
work, batch, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
torch.set_flush_denormal(True)
net = inception_ref.FidInception().eval()
net.load_state_dict(torch.load(os.path.join(work, "inception.pth")), strict=False)
net = net.to(memory_format=torch.channels_last)
images = np.load(os.path.join(work, "images.npz"))["arr_0"]
def features(x):  # pytorch-fid's input: x / 255, bilinear to 299, 2x - 1
    x = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255
    x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) * 2 - 1
    return net(x.contiguous(memory_format=torch.channels_last))[0]
with torch.no_grad():
    features(images[:2])  # warm-up
    t0 = time.perf_counter()
    for i in range(0, len(images), batch):
        features(images[i:i + batch])
    dt = time.perf_counter() - t0
print(f"{len(images)} images in {dt:.1f} s, {len(images) / dt:.2f} img/s")
PY
)
echo "pytorch: $theirs"
/usr/bin/python3 - "$ours" "$theirs" <<'PY'
import re, sys
ours = float(re.search(r"([0-9.]+) img/s", sys.argv[1]).group(1))
theirs = float(re.search(r"([0-9.]+) img/s", sys.argv[2]).group(1))
print(f"inception_ratio={ours / theirs:.2f}")
PY
