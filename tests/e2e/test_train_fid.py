"""End to end: FID during training (train.fid_every, issue 12) with random Inception
weights, on 2 MPI ranks and on 1.

- metrics.jsonl holds one {"step": N, "train_fid": ...} record per measurement (with
  how it was measured: DDIM steps, samples, resize, weights), the last at the final
  step, and train.log says it.
- The value is the FID that `ddpm_eval fid` gives for the same samples, drawn
  independently by `ddpm_sample` (DDIM, the run's seed) from the checkpoint's EMA of
  that step, against the same reference.
- 1 and 2 ranks measure the same FID (the training and the samples do not depend on
  the rank count).
- The reference images' statistics are cached in the run directory and equal those of
  `ddpm_eval fid --save-stats`; a stats .npz as train.fid_ref gives the same FID.
- A resumed run whose Inception weights changed measures its reference anew (another
  cache, equal to --save-stats with the new weights); statistics of another resize as
  train.fid_ref: exit 2, one line naming both.
- train.fid_every without train.fid_ref, or without Inception weights: exit 2, one line.

usage: test_train_fid.py --bin DIR --mpiexec PATH --workdir DIR
"""
import argparse
import glob
import json
import os
import shutil

import numpy as np

import e2e_util as u

TINY = os.path.join(u.SOURCE_DIR, "configs", "tiny.yaml")
FID_NUM, FID_STEPS, SEED = 6, 4, 1  # tiny.yaml's train.seed is 1


def fid_records(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    for r in records:
        if "train_fid" in r:
            u.check(r["fid_sampler"] == "ddim" and r["fid_steps"] == FID_STEPS and r["fid_num"] == FID_NUM and
                    r["fid_resize"] == "tf" and r["inception_weights"] == "other", f"FID record {r}")
    return {r["step"]: r["train_fid"] for r in records if "train_fid" in r}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="directory with the apps")
    ap.add_argument("--mpiexec", required=True)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    work = os.path.abspath(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "png"))
    app = {n: os.path.join(args.bin, n) for n in ("ddpm_prepare", "ddpm_train", "ddpm_sample", "ddpm_eval")}
    _, weights = u.random_inception_weights(work)
    for i, image in enumerate(u.make_images(n=8, size=16, seed=4)):
        u.write_png(os.path.join(work, "png", f"{i}.png"), image)
    data = os.path.join(work, "data")
    u.expect_ok([app["ddpm_prepare"], "folder", "--src", os.path.join(work, "png"), "--out", data, "--quiet"])

    def train(run_dir, ranks, ref, *extra):
        cmd = [app["ddpm_train"], "--config", TINY, "--run-dir", run_dir, "--no-progress", "--set", f"data.path={data}",
               "--set", "train.total_steps=10", "--set", "train.fid_every=5", "--set", f"train.fid_num={FID_NUM}",
               "--set", f"train.fid_steps={FID_STEPS}", "--set", f"train.fid_ref={ref}", "--set",
               f"train.fid_inception={weights}", "--set", "train.checkpoint_every=5", "--set",
               "train.keep_checkpoints=3", *extra]
        if ranks > 1:
            cmd = [args.mpiexec, "--oversubscribe", "--allow-run-as-root", "-np", str(ranks), "-x", "OMP_NUM_THREADS=1",
                   *cmd]
        return u.expect_ok(cmd)

    run2 = os.path.join(work, "run2")
    train(run2, 2, data)
    fids = fid_records(run2)
    u.check(sorted(fids) == [5, 10], f"FID records at steps {sorted(fids)}, expected [5, 10]")
    u.check(all(np.isfinite(v) and v > 0 for v in fids.values()), f"FIDs {fids}")
    log = open(os.path.join(run2, "train.log")).read()
    u.check(f"training FID {fids[5]:.6f} at step 5" in log, "train.log does not report the FID of step 5")
    print(f"ok   2 ranks: FID at step 5 {fids[5]:.6f}, at step 10 {fids[10]:.6f} (metrics.jsonl)")

    # The same number from the apps, one at a time.
    for step in (5, 10):
        out = os.path.join(work, f"samples{step}")
        u.expect_ok([app["ddpm_sample"], "--checkpoint", os.path.join(run2, "checkpoints", f"ckpt-{step:08d}.h5"),
                     "--num", str(FID_NUM), "--sampler", "ddim", "--steps", str(FID_STEPS), "--seed", str(SEED),
                     "--out", out, "--no-png"])
        r = u.expect_ok([app["ddpm_eval"], "fid", "--inception", weights, os.path.join(out, "samples.npz"), data])
        independent = u.fid_value(r)
        u.check(abs(independent - fids[step]) <= 1e-6 * abs(independent),
                f"step {step}: FID in training {fids[step]} vs ddpm_sample + ddpm_eval fid {independent}")
        print(f"ok   step {step}: ddpm_sample + ddpm_eval fid give {independent:.6f}")

    caches = glob.glob(os.path.join(run2, "fid_ref-*.npz"))
    u.check(len(caches) == 1, f"reference caches in the run directory: {caches}")
    stats = os.path.join(work, "ref_stats.npz")
    u.expect_ok([app["ddpm_eval"], "fid", "--inception", weights, "--save-stats", data, stats])
    with np.load(caches[0]) as c, np.load(stats) as s:
        u.check(np.allclose(c["mu"], s["mu"], rtol=1e-5, atol=1e-7) and
                np.allclose(c["sigma"], s["sigma"], rtol=1e-4, atol=1e-7), "cached reference statistics differ")
    print(f"ok   reference statistics cached in {os.path.basename(caches[0])}, equal to --save-stats")

    run1 = os.path.join(work, "run1")
    train(run1, 1, stats)
    one = fid_records(run1)
    for step in (5, 10):
        u.check(abs(one[step] - fids[step]) <= 1e-6 * abs(fids[step]), f"step {step}: 1 rank {one[step]}, 2 ranks {fids[step]}")
    u.check(not glob.glob(os.path.join(run1, "fid_ref-*.npz")), "a stats .npz reference was cached")
    print(f"ok   1 rank with the stats .npz as reference: {one[5]:.6f}, {one[10]:.6f}")

    # New weights on resume: the reference is measured again, into a cache of its own.
    _, weights2 = u.random_inception_weights(work, seed=8, name="inception2")
    u.expect_ok([app["ddpm_train"], "--config", TINY, "--run-dir", run2, "--no-progress", "--set", f"data.path={data}",
                 "--set", "train.total_steps=15", "--set", "train.fid_every=5", "--set", f"train.fid_num={FID_NUM}",
                 "--set", f"train.fid_steps={FID_STEPS}", "--set", f"train.fid_ref={data}", "--set",
                 f"train.fid_inception={weights2}", "--set", "train.checkpoint_every=5"])
    caches2 = sorted(set(glob.glob(os.path.join(run2, "fid_ref-*.npz"))) - set(caches))
    u.check(len(caches2) == 1, f"after new weights, new reference caches: {caches2}")
    stats2 = os.path.join(work, "ref_stats2.npz")
    u.expect_ok([app["ddpm_eval"], "fid", "--inception", weights2, "--save-stats", data, stats2])
    with np.load(caches2[0]) as c, np.load(stats2) as s, np.load(caches[0]) as old:
        u.check(np.allclose(c["mu"], s["mu"], rtol=1e-5, atol=1e-7) and not np.allclose(c["mu"], old["mu"]),
                "the new weights' reference statistics")
        u.check(str(c["inception_weights_sha256"]) == str(s["inception_weights_sha256"]), "cache provenance")
    u.check(15 in fid_records(run2), "no FID at step 15 after the resume")
    print(f"ok   new Inception weights on resume: reference measured again into {os.path.basename(caches2[0])}")

    base = [app["ddpm_train"], "--config", TINY, "--no-progress", "--set", f"data.path={data}", "--set",
            "train.fid_every=5"]
    torch_stats = os.path.join(work, "ref_stats_torch.npz")
    u.expect_ok([app["ddpm_eval"], "fid", "--inception", weights, "--resize", "torch", "--save-stats", data, torch_stats])
    u.expect_one_line_error(base + ["--run-dir", os.path.join(work, "bad0"), "--set", f"train.fid_ref={torch_stats}",
                                    "--set", f"train.fid_inception={weights}"],
                            [torch_stats, "resize torch", "resize tf"], "fid_ref of another resize")
    u.expect_one_line_error(base + ["--run-dir", os.path.join(work, "bad1")], ["train.fid_ref"], "fid_every, no fid_ref")
    missing = os.path.join(work, "none.h5")
    u.expect_one_line_error(base + ["--run-dir", os.path.join(work, "bad2"), "--set", f"train.fid_ref={data}", "--set",
                                    f"train.fid_inception={missing}"], [missing, "convert_inception.py"],
                            "no Inception weights")


if __name__ == "__main__":
    u.main_wrapper(main)
