#!/usr/bin/env bash
# bench/bpd_vs_pytorch.sh [IMAGES] [BATCH] [T] [CONFIG]
# The variational bound's speed (`ddpm_eval bpd`, the paper's NLL): image-steps per second
# (one q-sample, one U-Net forward and one bound term per image and t) of ddpm against
# the same loop in PyTorch, side by side on this machine: the reference calc_bpd_loop as
# tests/e2e/test_eval_bpd.py ports it (for every t from T-1 down to 0 a q-sample, the
# model's eps, x0 clipped, the KL term or the decoder at t = 0; in numpy around the
# PyTorch U-Net of tests/reference/unet_ref.py). Both run CONFIG's model (default
# configs/cifar10.yaml) with the same random weights on the same IMAGES (default 8)
# CIFAR-sized images in batches of BATCH (default 8), over a schedule of T (default 25)
# steps, with the same threads (one per core). PyTorch gets its best CPU settings: 2
# intra-op threads, OpenBLAS single-threaded, denormals flushed, no_grad; its loop is
# timed after one warm-up forward. ddpm's rate is that of the loop too: the difference
# between a run at T and one at T0 = 5 steps, so process start, loading the weights and
# planning cancel (its end-to-end time at T is printed as well). Ends with the line
# `bpd_ratio=R` (ddpm image-steps/s over PyTorch's; > 1 means faster).
set -euo pipefail
cd "$(dirname "$0")/.."
images=${1:-8}
batch=${2:-8}
steps=${3:-25}
config=${4:-configs/cifar10.yaml}
short=5
[ "$steps" -gt "$short" ] || { echo "bpd_vs_pytorch.sh: T must be above $short" >&2; exit 2; }
threads=$(env -u OMP_NUM_THREADS nproc)
source launch/deps.sh
ddpm_ensure_packages --with-tests
[ -x build/src/apps/ddpm_eval ] && [ -x build/src/apps/ddpm_prepare ] || ddpm_build build >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "machine: $(lscpu | awk -F: '/Model name/{gsub(/^ +/,"",$2); print $2}'), $threads cores, bf16 flags: $(grep -o -w -E 'amx_bf16|avx512_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"

# The model with random weights (PyTorch's default init) as a state_dict and as a ddpm
# weights file, and the images as a prepared dataset.
OPENBLAS_NUM_THREADS=1 /usr/bin/python3 - "$work" "$config" "$images" <<'PY'
import os, sys
import torch
import yaml
sys.path.insert(0, os.path.join(os.getcwd(), "tests", "e2e"))
import e2e_util as u  # puts tests/reference on sys.path
import unet_ref
work, config, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(config) as f:
    model = yaml.safe_load(f)["model"]
torch.manual_seed(0)
torch.save(unet_ref.from_config(model).state_dict(), os.path.join(work, "model.ckpt"))
os.makedirs(os.path.join(work, "png"))
for i, image in enumerate(u.make_images(n=n, size=model["resolution"], seed=1)):
    u.write_png(os.path.join(work, "png", f"{i:03d}.png"), image)
PY
/usr/bin/python3 tools/convert_torch_checkpoint.py "$work/model.ckpt" "$work/weights.h5" --config "$config" >/dev/null
build/src/apps/ddpm_prepare folder --src "$work/png" --out "$work/data" --quiet >/dev/null

ddpm_seconds() {  # T -> wall seconds of ddpm_eval bpd over the images
  local t0 t1
  t0=$(date +%s.%N)
  OMP_NUM_THREADS=$threads build/src/apps/ddpm_eval bpd --checkpoint "$work/weights.h5" --data "$work/data" \
    --num "$images" --batch "$batch" --set "diffusion.num_timesteps=$1" --out "$work/bpd_$1.h5" >/dev/null 2>&1
  t1=$(date +%s.%N)
  echo "$t0 $t1" | awk '{printf "%.3f", $2 - $1}'
}
long_s=$(ddpm_seconds "$steps")
short_s=$(ddpm_seconds "$short")
ours=$(/usr/bin/python3 -c "
n, T, T0, a, b = $images, $steps, $short, $long_s, $short_s
print(f'{n * (T - T0) / (a - b):.2f} image-steps/s ({n} images x ({T} - {T0}) steps in {a - b:.1f} s; '
      f'end to end at T = {T}: {a:.1f} s, {n * T / a:.2f} image-steps/s)')")
echo "ddpm:    $ours"

theirs=$(OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=$threads /usr/bin/python3 - "$work" "$config" "$images" "$batch" \
  "$steps" "$threads" <<'PY'
import os, sys, time
import numpy as np
import torch
import yaml
sys.path.insert(0, os.path.join(os.getcwd(), "tests", "e2e"))
import e2e_util as u  # puts tests/reference on sys.path
import test_eval_bpd
import unet_ref
work, config = sys.argv[1], sys.argv[2]
n, batch, steps, threads = (int(a) for a in sys.argv[3:])
torch.set_num_threads(threads)
torch.set_flush_denormal(True)
with open(config) as f:
    model = yaml.safe_load(f)["model"]
net = unet_ref.from_config(model)
net.load_state_dict(torch.load(os.path.join(work, "model.ckpt")))
net.eval()
images = u.make_images(n=n, size=model["resolution"], seed=1)
rng = np.random.default_rng(0)
noise = lambda t, k, m: rng.standard_normal((k, m["in_channels"] * m["resolution"] ** 2))
R, C = model["resolution"], model["in_channels"]
with torch.no_grad():  # warm-up: one forward at the batch size
    net(torch.zeros(min(batch, n), C, R, R), torch.zeros(min(batch, n), dtype=torch.int64))
t0 = time.perf_counter()
for i in range(0, n, batch):
    bound = test_eval_bpd.reference_bound(net, images[i:i + batch], model, steps=steps, noise=noise)
dt = time.perf_counter() - t0
print(f"{n * steps / dt:.2f} image-steps/s ({n} images x {steps} steps in {dt:.1f} s)")
PY
)
echo "pytorch: $theirs"
/usr/bin/python3 -c "
import re
ours, theirs = (float(re.match(r'([0-9.]+) image-steps/s', s).group(1)) for s in ('''$ours''', '''$theirs'''))
print(f'bpd_ratio={ours / theirs:.2f}')"
