"""End to end on one process: ddpm_prepare -> ddpm_train -> ddpm_sample.

- Training the tiny model on 8 images drives L_simple well below what any denoiser that
  only knows the data's per-pixel Gaussian statistics can reach (computed here from the
  images): the network has learnt the images themselves.
- Resume is exact: N steps in one go and N/2 + resume + N/2 give bitwise identical
  params, EMA and Adam moments.
- The same seed gives the same samples, whatever the batch size; another seed differs;
  samples are truncated to bytes by default, rounded with --quantize round.
- A bad config, a missing dataset, a checkpoint of another model: exit 2, one line.
"""
import argparse
import json
import os
import shutil
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_util import SOURCE_DIR, check, expect_ok, expect_one_line_error, make_images, write_png  # noqa: E402

TINY = os.path.join(SOURCE_DIR, "configs", "tiny.yaml")


def gaussian_baseline(images, T=1000, beta_start=1e-4, beta_end=0.02):
    """E_t of the MSE of the best epsilon-predictor for data that is Gaussian with the
    images' per-pixel mean and variance: a^2 s^2 / (a^2 s^2 + b^2), a^2 = alphabar_t."""
    x = np.stack(images).astype(np.float64) / 127.5 - 1
    var = x.reshape(len(x), -1).var(0)
    alphabar = np.cumprod(1 - np.linspace(beta_start, beta_end, T))[:, None]
    return float((alphabar * var / (alphabar * var + (1 - alphabar))).mean())


def read_state(run_dir, step):
    path = os.path.join(run_dir, "checkpoints", "ckpt-%08d.h5" % step)
    with h5py.File(path, "r") as f:
        return {g: {k: f[g][k][...] for k in f[g]} for g in ("params", "ema", "optimizer/m", "optimizer/v")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="directory with ddpm_prepare, ddpm_train, ddpm_sample")
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    prepare, train, sample = (os.path.join(args.bin, n) for n in ("ddpm_prepare", "ddpm_train", "ddpm_sample"))
    work = args.workdir
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "png"))
    images = make_images()
    for i, image in enumerate(images):
        write_png(os.path.join(work, "png", f"{i}.png"), image)
    data = os.path.join(work, "data")
    expect_ok([prepare, "folder", "--src", os.path.join(work, "png"), "--out", data, "--quiet"])
    common = ["--config", TINY, "--set", f"data.path={data}", "--set", "train.batch_size=8", "--set",
              "model.dropout=0", "--set", "train.lr=0.002", "--set", "train.warmup_steps=20", "--set",
              "train.sample_every=0", "--no-progress"]

    # 1. The loss goes down, far below the Gaussian baseline.
    run = os.path.join(work, "run")
    expect_ok([train] + common + ["--run-dir", run, "--set", "train.total_steps=200", "--set", "train.log_every=50",
                                  "--set", "train.checkpoint_every=100"])
    with open(os.path.join(run, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    first, last = records[0]["loss"], records[-1]["loss"]
    baseline = gaussian_baseline(images)
    print(f"L_simple: first interval {first:.4f}, last interval {last:.4f}; Gaussian baseline {baseline:.4f}")
    check(first > 4 * last, f"the loss did not fall: {first} in the first interval, {last} in the last")
    check(last < 0.5 * baseline, f"after 200 steps L_simple = {last}, not below half the Gaussian baseline {baseline}")
    check(all(k in records[-1] for k in ("loss_q0", "loss_q1", "loss_q2", "loss_q3", "lr", "grad_norm", "img_per_s")),
          f"metrics.jsonl lacks fields: {records[-1]}")
    check(os.path.exists(os.path.join(run, "config.yaml")), "config.yaml not saved in the run directory")

    # 2. Resume is exact.
    straight, halves = os.path.join(work, "straight"), os.path.join(work, "halves")
    short = ["--set", "train.log_every=4", "--set", "train.checkpoint_every=100", "--set", "model.dropout=0.1"]
    expect_ok([train] + common + short + ["--run-dir", straight, "--set", "train.total_steps=12"])
    expect_ok([train] + common + short + ["--run-dir", halves, "--set", "train.total_steps=6"])
    expect_ok([train] + common + short + ["--run-dir", halves, "--set", "train.total_steps=12"])
    a, b = read_state(straight, 12), read_state(halves, 12)
    for group in a:
        for name in a[group]:
            check(np.array_equal(a[group][name], b[group][name]), f"resume differs in {group}/{name}")
    print("ok   12 steps == 6 + resume + 6, bitwise (params, ema, m, v)")

    # 3. Same seed, same samples, whatever the batch.
    outs = []
    for tag, seed, batch in (("s1", 3, 4), ("s2", 3, 2), ("s3", 4, 4)):
        out = os.path.join(work, tag)
        expect_ok([sample, "--run-dir", run, "--num", "4", "--batch", str(batch), "--seed", str(seed), "--sampler",
                   "ddim", "--steps", "10", "--out", out])
        with np.load(os.path.join(out, "samples.npz")) as z:
            outs.append(z["arr_0"])
        check(os.path.exists(os.path.join(out, "grid.png")) and os.path.exists(os.path.join(out, "images", "000003.png")),
              "grid.png / images/*.png missing")
    check(outs[0].shape == (4, 16, 16, 3) and outs[0].dtype == np.uint8, f"samples.npz arr_0 {outs[0].shape}")
    check(np.array_equal(outs[0], outs[1]), "the same seed gave different samples with another batch size")
    check(not np.array_equal(outs[0], outs[2]), "another seed gave the same samples")
    # Bytes by truncation (the published samplers'), rounding on request: the same floats,
    # so rounded - truncated is 0 or 1, and 1 for about half the values.
    out = os.path.join(work, "s1_round")
    expect_ok([sample, "--run-dir", run, "--num", "4", "--batch", "4", "--seed", "3", "--sampler", "ddim", "--steps",
               "10", "--quantize", "round", "--no-png", "--out", out])
    with np.load(os.path.join(out, "samples.npz")) as z:
        step_up = z["arr_0"].astype(int) - outs[0].astype(int)
    check(set(np.unique(step_up)) <= {0, 1} and 0.3 < step_up.mean() < 0.7,
          f"--quantize round minus the default: values {np.unique(step_up)}, mean {step_up.mean()}")
    out = os.path.join(work, "anc")
    expect_ok([sample, "--run-dir", run, "--num", "2", "--seed", "3", "--out", out, "--progressive", "250"])
    check(os.path.exists(os.path.join(out, "progressive.png")), "progressive.png missing")
    with np.load(os.path.join(out, "progressive.npz")) as z, np.load(os.path.join(out, "samples.npz")) as s:
        x0_pred, ts, final = z["x0_pred"], z["t"], s["arr_0"]
    check(list(ts) == [750, 500, 250, 0], f"progressive.npz t = {list(ts)}, expected t = 0 (mod 250) down to 0")
    check(x0_pred.shape == (4, 2, 16, 16, 3) and x0_pred.dtype == np.uint8, f"x0_pred {x0_pred.shape} {x0_pred.dtype}")
    diff = np.abs(x0_pred[-1].astype(int) - final.astype(int)).max()
    check(diff <= 1, f"the t = 0 prediction differs from the sample by {diff}")
    print("ok   same seed -> same samples (batch 4 and 2); another seed differs; ancestral + progressive")

    # 4. Bad input: one line, exit 2, nothing lost.
    bad = os.path.join(work, "bad.yaml")
    with open(bad, "w") as f:
        f.write("train:\n  learning_rate: 0.1\n")
    expect_one_line_error([train, "--config", bad, "--run-dir", os.path.join(work, "r_bad")],
                          [bad, "train.learning_rate"], "unknown config key")
    expect_one_line_error([train, "--config", TINY, "--run-dir", os.path.join(work, "r_missing"), "--set",
                           "data.path=" + os.path.join(work, "nowhere")], ["nowhere"], "missing dataset")
    before = sorted(os.listdir(os.path.join(run, "checkpoints")))
    expect_one_line_error([train] + common + ["--run-dir", run, "--set", "model.ch=64", "--set",
                                              "train.total_steps=400"],
                          ["ckpt-00000200.h5", "model.ch"], "checkpoint of another model")
    check(sorted(os.listdir(os.path.join(run, "checkpoints"))) == before, "a refused resume changed the checkpoints")
    expect_one_line_error([sample, "--checkpoint", os.path.join(work, "none.h5"), "--out", os.path.join(work, "x")],
                          ["none.h5", "no such file"], "missing checkpoint for sampling")
    expect_one_line_error([sample, "--run-dir", run, "--num", "1", "--steps", "10", "--out", os.path.join(work, "x")],
                          ["--steps", "ancestral"], "--steps with the ancestral sampler")
    expect_one_line_error([sample, "--run-dir", run, "--num", "1", "--sampler", "ddim", "--steps", "2", "--out", bad],
                          [bad, "not a directory"], "--out naming a file")
    check(open(bad).read() == "train:\n  learning_rate: 0.1\n", "--out naming a file changed the file")
    print("all train/sample end-to-end checks passed")


if __name__ == "__main__":
    main()
