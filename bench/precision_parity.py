"""bf16 against fp32 in training (issue 13, item 5): the demo model (configs/demo.yaml)
trained on the demo's MNIST digits with mpirun, once in fp32 and once in bf16, the same
seed and steps; then L_simple from both runs' metrics.jsonl side by side, and the FID of
each run's samples against the held-out test digits.

FID uses the FID Inception with random weights (tests/reference/inception_ref.py, as the
e2e tests do: the published weights cannot be downloaded here), so its values are not
comparable with published ones, only with each other. Its noise is measured too: the
same fp32 model sampled with another seed, and real train digits.

usage: /usr/bin/python3 bench/precision_parity.py [--steps N] [--ranks R] [--num N]
       [--work DIR]    (build/ must hold ddpm_prepare, ddpm_train, ddpm_sample, ddpm_eval)
Last line: parity final_loss_fp32=L final_loss_bf16=L loss_diff=D fid_fp32=F fid_bf16=F
fid_fp32_reseed=F fid_train=F
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import e2e_util as u  # noqa: E402
from test_mnist_fid import read_split  # noqa: E402

BIN = os.path.join(ROOT, "build", "src", "apps")


def run(cmd, **kw):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def losses(run_dir):
    """{step: L_simple} of a run's metrics.jsonl (the training lines)."""
    out = {}
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            m = json.loads(line)
            if "loss" in m:
                out[m["step"]] = m["loss"]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--ranks", type=int, default=os.cpu_count())
    ap.add_argument("--num", type=int, default=500, help="samples per FID")
    ap.add_argument("--work", default=os.path.join(ROOT, "runs", "precision_parity"))
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    train_dir, test_dir = os.path.join(ROOT, "data", "mnist32"), os.path.join(ROOT, "data", "mnist32_test")
    run(["bash", os.path.join(ROOT, "launch", "mnist_data.sh"), "--quiet", train_dir, test_dir])
    mpi = ["mpirun", "--oversubscribe", "-np", str(args.ranks), "-x", "OMP_NUM_THREADS=1"]
    if os.geteuid() == 0:
        mpi.append("--allow-run-as-root")

    took, curves, samples = {}, {}, {}
    for precision in ("fp32", "bf16"):
        run_dir = os.path.join(args.work, precision)
        t = time.time()
        run(mpi + [os.path.join(BIN, "ddpm_train"), "--config", os.path.join(ROOT, "configs", "demo.yaml"),
                   "--run-dir", run_dir, "--no-progress", "--set", f"data.path={train_dir}",
                   "--set", f"train.total_steps={args.steps}", "--set", f"device.precision={precision}",
                   "--set", "train.sample_every=0"])
        took[precision] = time.time() - t
        curves[precision] = losses(run_dir)
        for seed in (0, 1) if precision == "fp32" else (0,):
            out = os.path.join(args.work, f"samples_{precision}_{seed}")
            run(mpi + [os.path.join(BIN, "ddpm_sample"), "--run-dir", run_dir, "--num", str(args.num), "--batch",
                       "50", "--sampler", "ddim", "--steps", "50", "--seed", str(seed), "--no-png", "--out", out])
            samples[(precision, seed)] = os.path.join(out, "samples.npz")

    _, weights = u.random_inception_weights(args.work, seed=7)
    fid = [os.path.join(BIN, "ddpm_eval"), "fid", "--inception", weights]
    stats = os.path.join(args.work, "test_stats.npz")
    if os.path.exists(stats):
        os.remove(stats)  # --save-stats refuses to overwrite
    run(fid + ["--save-stats", test_dir, stats])
    train_images, _ = read_split(train_dir)
    train_npz = os.path.join(args.work, "train_digits.npz")
    np.savez(train_npz, arr_0=train_images[:args.num])

    def fid_of(path):
        return u.fid_value(subprocess.run(fid + [path, stats], check=True, capture_output=True, text=True))

    fids = {name: fid_of(path) for name, path in
            (("fp32", samples[("fp32", 0)]), ("bf16", samples[("bf16", 0)]),
             ("fp32_reseed", samples[("fp32", 1)]), ("train", train_npz))}

    steps = sorted(set(curves["fp32"]) & set(curves["bf16"]))
    print(f"\nL_simple (each value the mean over its log interval), {args.ranks} ranks, batch 32:")
    print(f"{'step':>6} {'fp32':>10} {'bf16':>10} {'bf16/fp32':>10}")
    shown = [s for s in steps if s % 250 == 0 or s == steps[-1]]
    for s in shown:
        f, b = curves["fp32"][s], curves["bf16"][s]
        print(f"{s:>6} {f:>10.5f} {b:>10.5f} {b / f:>10.4f}")
    tail = steps[-10:]
    mean = {p: float(np.mean([curves[p][s] for s in tail])) for p in ("fp32", "bf16")}
    print(f"mean of the last {len(tail)} intervals: fp32 {mean['fp32']:.5f}, bf16 {mean['bf16']:.5f} "
          f"({(mean['bf16'] / mean['fp32'] - 1) * 100:+.2f}%)")
    print(f"training time: fp32 {took['fp32']:.0f} s, bf16 {took['bf16']:.0f} s "
          f"(bf16 {took['fp32'] / took['bf16']:.2f}x as fast)")
    print(f"FID against the {len(read_split(test_dir)[0])} test digits (random Inception weights), "
          f"{args.num} images each: fp32 samples {fids['fp32']:.1f}, bf16 samples {fids['bf16']:.1f}, "
          f"fp32 samples of another seed {fids['fp32_reseed']:.1f}, real train digits {fids['train']:.1f}")
    final = {p: curves[p][steps[-1]] for p in ("fp32", "bf16")}
    print(f"parity final_loss_fp32={final['fp32']:.5f} final_loss_bf16={final['bf16']:.5f} "
          f"loss_diff={(final['bf16'] / final['fp32'] - 1):+.4f} fid_fp32={fids['fp32']:.2f} "
          f"fid_bf16={fids['bf16']:.2f} fid_fp32_reseed={fids['fp32_reseed']:.2f} fid_train={fids['train']:.2f}")


if __name__ == "__main__":
    main()
