"""End to end: `ddpm_eval bpd` (issue 12, the paper's NLL) against a numpy/torch port of
the reference calc_bpd_loop, and against itself over ranks and batch sizes.

- A random U-Net (the reference model in PyTorch, converted with
  tools/convert_torch_checkpoint.py) and 5 images prepared with ddpm_prepare; the bound
  over T = 20 steps. The port draws the same q-sample noise (tests/reference/philox.py's
  normal_fill, keyed by seed, image and t), runs the PyTorch model and the numpy process
  of make_diffusion_reference.py: every output array within 1e-5.
- 1 rank at batch 5 and 2, 2 ranks at batch 2, 4 ranks at batch 1: the same numbers.
- An existing output is refused before any work, a dataset that does not fit the model
  too: exit 2, one line, nothing written.
- `ddpm_eval rate-distortion` on that output: every row of its CSV against the rate and
  distortion computed here from the arrays, Table 4's rows, the figure.
- `ddpm_eval interpolate` writes a row per pair; bad pairs: exit 2, one line.

usage: test_eval_bpd.py --ddpm-eval PATH --ddpm-prepare PATH --mpiexec PATH --workdir DIR
"""
import argparse
import os
import re
import shutil
import sys

import h5py
import numpy as np
import torch

import e2e_util as u  # puts tests/reference on sys.path
import make_diffusion_reference as ref  # noqa: E402
import philox  # noqa: E402

T, NUM, SEED = 20, 5, 7
ARRAYS = ("total_bpd", "prior_bpd", "terms_bpd", "mse")
REF_TOL = 1e-5    # against PyTorch + numpy: fp32 U-Net differences
RANKS_TOL = 1e-6  # ddpm against itself: only the products' blocking may differ


def read_arrays(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in ARRAYS}


def ddpm_noise(t, n, model):
    """ddpm's q-sample noise of images 0..n-1 at step t (Purpose::kBound), as NCHW rows."""
    R, C = model["resolution"], model["in_channels"]
    return np.stack([philox.normal_fill(R * R * C, SEED, philox.PURPOSE_BOUND, 0, t, i).reshape(R, R, C)
                     .transpose(2, 0, 1).reshape(-1) for i in range(n)]).astype(np.float64)


def reference_bound(net, images, model, steps=T, noise=ddpm_noise):
    """calc_bpd_loop in numpy around the PyTorch model over T = steps, with ddpm's noise
    unless noise(t, n, model) gives other rows (bench/bpd_vs_pytorch.sh times this loop)."""
    R, C, n, T = model["resolution"], model["in_channels"], len(images), steps
    x0 = np.stack(images).astype(np.float32) / np.float32(127.5) - np.float32(1)  # NHWC, as images_to_model
    x0 = x0.transpose(0, 3, 1, 2).reshape(n, -1).astype(np.float64)  # NCHW rows for the model
    p = ref.Process(ref.beta_schedule("linear", T), "eps", "fixedlarge")
    terms, mse = np.zeros((n, T)), np.zeros((n, T))
    for t in range(T - 1, -1, -1):
        tt = np.full(n, t)
        xt = p.q_sample(x0, noise(t, n, model), tt).astype(np.float32)
        with torch.no_grad():
            out = net(torch.from_numpy(xt.reshape(n, C, R, R)), torch.from_numpy(tt)).numpy()
        out, xt = out.reshape(n, -1).astype(np.float64), xt.astype(np.float64)
        terms[:, t] = p.vb_terms(out, x0, xt, tt, clip=True)
        x0_hat, _ = p.xstart_and_mean(out, xt, tt, clip=True)
        mse[:, t] = ((x0_hat - x0) ** 2).mean(axis=1)
    prior = p.prior(x0)
    return {"total_bpd": terms.sum(axis=1) + prior, "prior_bpd": prior, "terms_bpd": terms, "mse": mse}


def main():
    ap = argparse.ArgumentParser()
    for name in ("--ddpm-eval", "--ddpm-prepare", "--mpiexec", "--workdir"):
        ap.add_argument(name, required=True)
    args = ap.parse_args()
    work = os.path.abspath(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "png"))
    model = dict(u.SMALL_MODEL)
    images = u.make_images(n=NUM + 1, size=model["resolution"], seed=3)
    for i, image in enumerate(images):
        u.write_png(os.path.join(work, "png", f"{i}.png"), image)
    data = os.path.join(work, "data")
    u.expect_ok([args.ddpm_prepare, "folder", "--src", os.path.join(work, "png"), "--out", data, "--quiet"])
    net = u.random_model(model, seed=11)
    ckpt, config, weights = (os.path.join(work, n) for n in ("model.ckpt", "model.yaml", "weights.h5"))
    torch.save(net.state_dict(), ckpt)
    u.write_yaml_config(config, model)
    u.expect_ok([sys.executable, u.CONVERTER, ckpt, weights, "--config", config])

    def bpd(out, batch, ranks=1, extra=()):
        cmd = [args.ddpm_eval, "bpd", "--checkpoint", weights, "--data", data, "--num", str(NUM), "--batch",
               str(batch), "--seed", str(SEED), "--set", f"diffusion.num_timesteps={T}", "--out", out, *extra]
        if ranks > 1:
            cmd = [args.mpiexec, "--oversubscribe", "--allow-run-as-root", "-np", str(ranks), "-x",
                   "OMP_NUM_THREADS=1", *cmd]
        return u.expect_ok(cmd)

    # 1. Against the port.
    first = os.path.join(work, "bpd_1x5.h5")
    r = bpd(first, 5)
    got = read_arrays(first)
    want = reference_bound(net, images[:NUM], model)
    for k in ARRAYS:
        u.check(got[k].shape == want[k].shape and got[k].dtype == np.float64, f"{k}: {got[k].shape} {got[k].dtype}")
        err = u.relative_error(got[k], want[k])
        u.check(err <= REF_TOL, f"{k} vs the numpy/torch port: relative error {err:.3e} > {REF_TOL}")
        print(f"ok   {k} {got[k].shape} vs the numpy/torch port of calc_bpd_loop: relative error {err:.2e}")
    u.check(np.all(got["terms_bpd"] > 0), "a bound term is not positive")
    last = r.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"bits/dim: ([0-9.]+) \u00b1 ([0-9.]+)", last)
    u.check(m is not None, f"last line {last!r} is not 'bits/dim: <mean> \u00b1 <stderr>'")
    mean, stderr = float(m.group(1)), float(m.group(2))
    u.check(abs(mean - want["total_bpd"].mean()) < 1e-5, f"printed mean {mean} vs {want['total_bpd'].mean()}")
    u.check(abs(stderr - want["total_bpd"].std(ddof=1) / np.sqrt(NUM)) < 1e-5, f"printed stderr {stderr}")
    print(f"ok   last line: {last}")

    # 2. Ranks and batch sizes.
    for ranks, batch in ((1, 2), (2, 2), (4, 1)):
        out = os.path.join(work, f"bpd_{ranks}x{batch}.h5")
        bpd(out, batch, ranks)
        other = read_arrays(out)
        for k in ARRAYS:
            err = u.relative_error(other[k], got[k])
            u.check(err <= RANKS_TOL, f"{ranks} rank(s), batch {batch}: {k} differs by {err:.3e}")
        print(f"ok   {ranks} rank(s) at batch {batch}: every array within {RANKS_TOL} of 1 rank at batch 5")

    # 3. Refusals: exit 2, one line, nothing written.
    before = open(first, "rb").read()
    u.expect_one_line_error([args.ddpm_eval, "bpd", "--checkpoint", weights, "--data", data, "--out", first],
                            [first, "exists"], "an existing --out")
    u.check(open(first, "rb").read() == before, "the existing output was changed")
    gray = os.path.join(work, "gray")
    u.expect_ok([args.ddpm_prepare, "folder", "--src", os.path.join(work, "png"), "--out", gray, "--quiet",
                 "--resolution", "8"])
    out = os.path.join(work, "never.h5")
    u.expect_one_line_error([args.ddpm_eval, "bpd", "--checkpoint", weights, "--data", gray, "--out", out],
                            [gray, "8x8x3", "16x16x3"], "a dataset of another size")
    u.check(not os.path.exists(out) and not os.path.exists(out + ".tmp"), "a refused run wrote its output")

    # 4. Rate and distortion (Table 4, Fig. 5) from the same arrays.
    rd = os.path.join(work, "rd")
    u.expect_ok([args.ddpm_eval, "rate-distortion", first, "--out", rd])
    rows = np.loadtxt(os.path.join(rd, "rate_distortion.csv"), delimiter=",", skiprows=1)
    terms, mse = got["terms_bpd"], got["mse"]
    for steps, t, rate, rmse, rmse_of_mean in rows:
        t = int(t)
        want_rate = (got["prior_bpd"] + terms[:, t + 1:].sum(axis=1)).mean()
        u.check(steps == T - t and abs(rate - want_rate) < 2e-6, f"t {t}: rate {rate} vs {want_rate}")
        u.check(abs(rmse - (127.5 * np.sqrt(mse[:, t])).mean()) < 2e-5, f"t {t}: distortion {rmse}")
        u.check(abs(rmse_of_mean - 127.5 * np.sqrt(mse[:, t].mean())) < 2e-5, f"t {t}: rmse of mean {rmse_of_mean}")
    u.check(len(rows) == T and rows[0][1] == T - 1 and rows[-1][1] == 0, f"rows for t {rows[0][1]}..{rows[-1][1]}")
    table = np.loadtxt(os.path.join(rd, "table4.csv"), delimiter=",", skiprows=1)
    u.check(list(table[:, 0]) == [T * k // 10 for k in range(10, 0, -1)], f"Table 4's steps: {table[:, 0]}")
    u.check(os.path.getsize(os.path.join(rd, "rate_distortion.png")) > 10000, "the figure is missing or empty")
    print(f"ok   rate-distortion: {len(rows)} rows match the arrays; table4.csv; rate_distortion.png")
    u.expect_one_line_error([args.ddpm_eval, "rate-distortion", weights, "--out", rd], [weights, "prior_bpd"],
                            "rate-distortion of a file that is not bpd output")

    # 5. Interpolation writes one row per pair: the sources around the decoded mixes.
    interp = os.path.join(work, "interp")
    base = [args.ddpm_eval, "interpolate", "--checkpoint", weights, "--data", data, "--set",
            f"diffusion.num_timesteps={T}", "--t", "10", "--lambdas", "5", "--out", interp]
    u.expect_ok(base + ["--pairs", "0:1,2:4"])
    for name in ("pair_0_1.png", "pair_2_4.png"):
        u.check(os.path.getsize(os.path.join(interp, name)) > 200, f"{name} is missing or empty")
    print("ok   interpolate: pair_0_1.png, pair_2_4.png")
    u.expect_one_line_error(base + ["--pairs", "0:9"], [data, "0:9"], "interpolation past the dataset")
    u.expect_one_line_error(base + ["--pairs", "0-1"], ["--pairs", "0-1"], "a malformed pair")


if __name__ == "__main__":
    u.main_wrapper(main)
