"""End to end: `ddpm_eval fid` and `ddpm_eval is` (issue 12) with random Inception
weights (tests/reference/inception_ref.py: pytorch-fid's network, BatchNorm statistics
calibrated so that activations stay O(1)), converted by tools/convert_inception.py.

- The same images as a PNG folder and as an .npz give the same statistics: FID 0
  against each other (to the eigendecompositions' rounding); another set gives a positive, finite FID although N < 2048 makes
  both covariances singular.
- --save-stats writes pytorch-fid's mu/sigma file, numpy reads it, and FID against it
  equals FID against the images; it refuses to overwrite.
- `is` prints `IS: <mean> ± <std>` within [1, number of classes].
- No weights: exit 2 and one line that says how to get them.

usage: test_eval_fid.py --ddpm-eval PATH --workdir DIR
"""
import os
import re
import sys

import numpy as np
import torch

import e2e_util as u  # puts tests/reference on sys.path
import inception_ref  # noqa: E402

N = 12


def fid_value(result):
    m = re.fullmatch(r"FID: (-?[0-9.e+-]+)", result.stdout.strip().splitlines()[-1])
    u.check(m is not None, f"last line {result.stdout.strip().splitlines()[-1]!r} is not 'FID: <value>'")
    return float(m.group(1))


def main():
    args = u.eval_test_args()
    work = args.workdir
    net = inception_ref.FidInception().eval()
    inception_ref.random_weights(net, seed=7)
    pth, weights = os.path.join(work, "inception.pth"), os.path.join(work, "inception.h5")
    torch.save(inception_ref.pytorch_fid_state_dict(net), pth)
    u.expect_ok([sys.executable, os.path.join(u.SOURCE_DIR, "tools", "convert_inception.py"), pth, weights])

    a_dir, b_npz, a_npz = os.path.join(work, "a"), os.path.join(work, "b.npz"), os.path.join(work, "a.npz")
    os.makedirs(a_dir)
    a = u.make_images(n=N, size=32, seed=1)
    for i, image in enumerate(a):
        u.write_png(os.path.join(a_dir, f"{i:02d}.png"), image)
    np.savez(a_npz, arr_0=np.stack(a))
    np.savez_compressed(b_npz, arr_0=np.stack(u.make_images(n=N, size=32, seed=2))[:, ::-1])
    fid = [args.ddpm_eval, "fid", "--inception", weights, "--batch", "5"]

    same = fid_value(u.expect_ok(fid + [a_dir, a_npz]))
    apart = fid_value(u.expect_ok(fid + [a_dir, b_npz]))
    u.check(np.isfinite(apart) and apart > 1e-3, f"FID between different sets is {apart}")
    # 0 up to the eigendecompositions' rounding on singular 2048 x 2048 covariances.
    u.check(abs(same) < 1e-4 * apart, f"FID of a folder against the .npz of the same images is {same}, not 0")
    print(f"ok   FID(folder, npz of the same images) = {same:.2e}; FID(a, b) = {apart:.6f} with N = {N} < 2048")

    stats = os.path.join(work, "a_stats.npz")
    u.expect_ok(fid + ["--save-stats", a_dir, stats])
    with np.load(stats) as z:
        mu, sigma = z["mu"], z["sigma"]
    u.check(mu.shape == (2048,) and sigma.shape == (2048, 2048) and mu.dtype == np.float64 and
            sigma.dtype == np.float64, f"stats: mu {mu.shape} {mu.dtype}, sigma {sigma.shape} {sigma.dtype}")
    u.check(np.allclose(sigma, sigma.T), "sigma is not symmetric")
    from_stats = fid_value(u.expect_ok(fid + [stats, b_npz]))
    u.check(abs(from_stats - apart) <= 1e-9 * max(1.0, apart), f"FID from stats {from_stats} vs from images {apart}")
    print(f"ok   --save-stats: numpy reads mu [2048] and sigma [2048, 2048]; FID from them {from_stats:.6f}")
    before = open(stats, "rb").read()
    u.expect_one_line_error(fid + ["--save-stats", a_dir, stats], [stats, "exists"], "--save-stats over a file")
    u.check(open(stats, "rb").read() == before, "the statistics file was changed")

    r = u.expect_ok([args.ddpm_eval, "is", "--inception", weights, "--splits", "3", a_npz])
    m = re.fullmatch(r"IS: ([0-9.]+) \u00b1 ([0-9.]+)", r.stdout.strip().splitlines()[-1])
    u.check(m is not None, f"is: last line {r.stdout.strip().splitlines()[-1]!r}")
    score = float(m.group(1))
    u.check(1.0 <= score <= 1008.0, f"IS {score} outside [1, 1008]")
    print(f"ok   {r.stdout.strip().splitlines()[-1]}")

    env_free = [args.ddpm_eval, "fid", "--inception", os.path.join(work, "none.h5"), a_dir, b_npz]
    u.expect_one_line_error(env_free, ["none.h5", "convert_inception.py"], "no Inception weights")


if __name__ == "__main__":
    u.main_wrapper(main)
