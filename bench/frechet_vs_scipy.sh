#!/usr/bin/env bash
# bench/frechet_vs_scipy.sh [N] [D] [REPEATS]
# The Fréchet distance between two D-dimensional statistics (D = 2048, FID's; each the
# mean and covariance of N correlated random features), computed by ddpm
# (build/bench/bench_frechet: LAPACK's dsyevd and OpenBLAS's products, eval/frechet.h)
# and by pytorch-fid's calculate_frechet_distance (scipy.linalg.sqrtm of sigma1·sigma2,
# the path pytorch-fid, TTUR and OpenAI's evaluator take), on the same two files, one
# after the other, both with every core (OpenBLAS threads). Prints each side's median
# time of REPEATS runs and value, and ends with `frechet_ratio=R` (scipy's time over
# ddpm's; > 1 means faster) and `frechet_relative_difference=E`.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-5000}
d=${2:-2048}
repeats=${3:-3}
threads=$(env -u OMP_NUM_THREADS nproc)
source launch/deps.sh
ddpm_ensure_packages --with-tests
[ -x build/bench/bench_frechet ] || ddpm_build build bench_frechet >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "machine: $(lscpu | awk -F: '/Model name/{gsub(/^ +/,"",$2); print $2}'), $threads cores, bf16 flags: $(grep -o -w -E 'amx_bf16|avx512_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "statistics: N = $n features of D = $d, two sets"
OPENBLAS_NUM_THREADS=$threads /usr/bin/python3 - "$work" "$n" "$d" <<'PY'
import os, sys
import numpy as np
work, n, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(2048)
for name, scale in (("a", 1.0), ("b", 1.3)):
    mixing = rng.standard_normal((d, d)) * (scale / np.sqrt(d))
    x = (rng.standard_normal((n, d)) @ mixing + 0.1 * rng.standard_normal(d)).astype(np.float32).astype(np.float64)
    np.savez(os.path.join(work, f"{name}.npz"), mu=x.mean(axis=0), sigma=np.cov(x, rowvar=False))
PY
theirs=$(OPENBLAS_NUM_THREADS=$threads /usr/bin/python3 - "$work" "$repeats" <<'PY'
import os, sys, time
import numpy as np
from scipy import linalg
work, repeats = sys.argv[1], int(sys.argv[2])
a, b = np.load(os.path.join(work, "a.npz")), np.load(os.path.join(work, "b.npz"))
mu1, sigma1, mu2, sigma2 = a["mu"], a["sigma"], b["mu"], b["sigma"]

def calculate_frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid's function, step for step (its eps offset only when sqrtm fails)."""
    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)

times = []
for r in range(repeats):
    t0 = time.perf_counter()
    value = calculate_frechet_distance(mu1, sigma1, mu2, sigma2)
    times.append(time.perf_counter() - t0)
    print(f"run {r + 1}: {times[-1]:.3f} s", file=sys.stderr)
times.sort()
print(f"frechet value={value!r} median_s={times[len(times) // 2]:.3f} min_s={times[0]:.3f}")
PY
)
echo "scipy:   $theirs"
ours=$(OPENBLAS_NUM_THREADS=$threads build/bench/bench_frechet "$work/a.npz" "$work/b.npz" "$repeats" | tail -1)
echo "ddpm:    $ours"
/usr/bin/python3 - "$ours" "$theirs" <<'PY'
import re, sys
def parse(line):
    return {k: float(v) for k, v in re.findall(r"(\w+)=([-0-9.e+]+)", line)}
ours, theirs = parse(sys.argv[1]), parse(sys.argv[2])
print(f"frechet_ratio={theirs['median_s'] / ours['median_s']:.2f}")
print(f"frechet_relative_difference={abs(ours['value'] - theirs['value']) / abs(theirs['value']):.2e}")
PY
