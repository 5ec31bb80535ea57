#!/usr/bin/python3
"""Damaged checkpoints and shards through the apps (issue 14; docs/testing.md).

Makes a small dataset (ddpm_prepare) and a checkpoint (ddpm_train, tiny config), then
N mutated copies of each: random byte flips, truncations, appended bytes, and HDF5
structure edits made with h5py (a dataset removed, replaced with another shape or dtype,
turned into a group or a soft/external link; an attribute removed, retyped or given
other text). Each damaged checkpoint goes through `ddpm_eval eps` (and every fourth
through a resuming `ddpm_train`), each damaged shard through `ddpm_prepare verify` and
`ddpm_train`. Every run must exit 0 (the damage was never read) or 2 with exactly one
error line, within the timeout; anything else (a crash, a sanitizer report, another
status, a hang) is listed and the script exits 1.

  /usr/bin/python3 bench/mutate_inputs.py [--apps build-asan/src/apps] [--count 1000]
      [--seed 1] [--workdir /tmp/ddpm-mutate] [--timeout 60]

Run it against the ASan + UBSan apps (bash launch/sanitize.sh asan builds them) so that
memory errors count as crashes.
"""
import argparse
import os
import random
import shutil
import subprocess
import sys
import time

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "mpi"))
import mpi_util  # noqa: E402  (write_png)

TINY = os.path.join(ROOT, "configs", "tiny.yaml")
ENV = dict(os.environ, OMP_NUM_THREADS="1",
           ASAN_OPTIONS="detect_leaks=1:abort_on_error=1",
           LSAN_OPTIONS="suppressions=" + os.path.join(ROOT, "tests", "sanitizers", "lsan.supp"),
           UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")


# ddpm_train initialises MPI: Open MPI's plugins, unloaded at MPI_Finalize, leave
# allocations LeakSanitizer can neither attribute nor suppress. Its memory errors and
# undefined behaviour still count; leaks are checked in the other two apps.
TRAIN_ENV = dict(ENV, ASAN_OPTIONS="detect_leaks=0:abort_on_error=1")


def run(cmd, timeout):
    start = time.time()
    env = TRAIN_ENV if os.path.basename(cmd[0]) == "ddpm_train" else ENV
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout, env=env)
        return r.returncode, r.stderr, time.time() - start
    except subprocess.TimeoutExpired as e:
        return "hang", (e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or ""), timeout


def verdict(tool, status, stderr):
    """None when acceptable, else why not."""
    errors = [l for l in stderr.splitlines() if l.startswith(tool + ": error") or l.startswith("error:")]
    if status == 0:
        return None
    if status == 2 and len(errors) == 1 and not any("Sanitizer" in l or "runtime error" in l for l in stderr.splitlines()):
        return None
    return f"status {status}, {len(errors)} error lines"


# --- mutations ------------------------------------------------------------------------

def flip_bytes(path, rng):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        for _ in range(rng.randint(1, 16)):
            off = rng.randrange(size)
            f.seek(off)
            b = f.read(1)[0]
            f.seek(off)
            f.write(bytes([b ^ (1 << rng.randrange(8))]))
    return "byte flips"


def truncate(path, rng):
    os.truncate(path, rng.randrange(os.path.getsize(path)))
    return "truncated"


def append(path, rng):
    with open(path, "ab") as f:
        f.write(bytes(rng.randrange(256) for _ in range(rng.randint(1, 4096))))
    return "bytes appended"


def all_datasets(f):
    names = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    return names


def structure_edit(path, rng):
    with h5py.File(path, "r+") as f:
        datasets = all_datasets(f)
        name = rng.choice(datasets)
        objects = ["/"] + datasets
        kind = rng.randrange(9)
        if kind == 0:
            del f[name]
            return f"removed {name}"
        if kind == 1:
            shape = f[name].shape
            del f[name]
            f.create_dataset(name, data=np.zeros(tuple(s + 1 for s in shape) or (2,), np.float32))
            return f"{name} reshaped"
        if kind == 2:
            data = f[name][()]
            del f[name]
            f.create_dataset(name, data=np.asarray(data).astype(rng.choice([np.float64, np.int32, np.uint8, np.float16])))
            return f"{name} retyped"
        if kind == 3:
            del f[name]
            f.create_group(name)
            return f"{name} became a group"
        if kind == 4:
            target = rng.choice(datasets)
            del f[name]
            f[name] = h5py.SoftLink("/" + target)
            return f"{name} became a soft link"
        if kind == 5:
            del f[name]
            f[name] = h5py.ExternalLink("/etc/passwd", "/x")
            return f"{name} became an external link"
        obj = f[rng.choice(objects)]
        attrs = list(obj.attrs)
        if not attrs:
            obj.attrs["unexpected"] = np.int64(rng.randrange(1 << 40))
            return "attribute added"
        attr = rng.choice(attrs)
        if kind == 6:
            del obj.attrs[attr]
            return f"attribute {attr} removed"
        if kind == 7:
            obj.attrs[attr] = rng.choice([np.float64(-1.5), np.int64(-7), "x" * rng.randint(0, 300), np.zeros(3)])
            return f"attribute {attr} retyped"
        value = obj.attrs[attr]
        if isinstance(value, (bytes, str)):
            text = value.decode(errors="replace") if isinstance(value, bytes) else value
            pos = rng.randrange(len(text) + 1)
            obj.attrs[attr] = text[:pos] + rng.choice(["\n", ": ", "[", "999999999", "-", "{", "\x00"]) + text[pos:]
        else:
            obj.attrs[attr] = np.int64(rng.choice([-1, 0, 1 << 40, int(np.asarray(value).ravel()[0]) + 1]))
        return f"attribute {attr} edited"


MUTATIONS = [flip_bytes, flip_bytes, truncate, append, structure_edit, structure_edit]


def mutate(path, rng):
    m = rng.choice(MUTATIONS)
    try:
        return m(path, rng)
    except (OSError, KeyError, ValueError, TypeError) as e:  # h5py refused the edit: flip instead
        return f"{flip_bytes(path, rng)} (edit failed: {type(e).__name__})"


# --- the inputs -----------------------------------------------------------------------

def prepare_inputs(args):
    w = args.workdir
    shutil.rmtree(w, ignore_errors=True)
    os.makedirs(os.path.join(w, "pngs"))
    yy, xx = np.mgrid[0:16, 0:16]
    for i in range(24):
        img = np.stack([(xx * (i % 5 + 1) * 9 + yy * 13 + c * 40 + i * 17) % 256 for c in range(3)], -1)
        mpi_util.write_png(os.path.join(w, "pngs", f"img{i:03d}.png"), img.astype(np.uint8))
    data = os.path.join(w, "data")
    status, err, _ = run([os.path.join(args.apps, "ddpm_prepare"), "folder", "--src", os.path.join(w, "pngs"),
                          "--out", data, "--shards", "2", "--quiet"], 300)
    if status != 0:
        sys.exit(f"mutate_inputs: ddpm_prepare failed: {err}")
    run_dir = os.path.join(w, "run")
    status, err, _ = run(train_cmd(args, data, run_dir, steps=2), 600)
    if status != 0:
        sys.exit(f"mutate_inputs: ddpm_train failed: {err}")
    ckpts = sorted(os.listdir(os.path.join(run_dir, "checkpoints")))
    ckpt = os.path.join(run_dir, "checkpoints", [c for c in ckpts if c.endswith(".h5")][-1])
    with h5py.File(os.path.join(w, "in.h5"), "w") as f:
        f["x"] = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
        f["t"] = np.array([3, 700], np.int64)
    return data, ckpt


def train_cmd(args, data, run_dir, steps):
    return [os.path.join(args.apps, "ddpm_train"), "--config", TINY, "--run-dir", run_dir, "--no-progress",
            "--set", f"data.path={data}", "--set", f"train.total_steps={steps}", "--set", "train.batch_size=4",
            "--set", "train.checkpoint_every=2", "--set", "train.log_every=1"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--apps", default=os.path.join(ROOT, "build-asan", "src", "apps"))
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workdir", default="/tmp/ddpm-mutate")
    p.add_argument("--timeout", type=float, default=60)
    args = p.parse_args()
    rng = random.Random(args.seed)
    data, ckpt = prepare_inputs(args)
    w = args.workdir
    shards = sorted(f for f in os.listdir(data) if f.endswith(".h5"))
    tally, failures, slowest = {}, [], 0.0

    def record(tool, what, status, stderr, seconds):
        nonlocal slowest
        slowest = max(slowest, seconds)
        bad = verdict(tool, status, stderr)
        key = f"{tool} exit {status}" if not bad else f"{tool} FAILED"
        tally[key] = tally.get(key, 0) + 1
        if bad:
            tail = "\n    ".join(stderr.strip().splitlines()[-6:])
            failures.append(f"{tool} on {what}: {bad}\n    {tail}")

    started = time.time()
    for i in range(args.count):
        # A damaged checkpoint: ddpm_eval eps, and every fourth a resuming ddpm_train.
        run_dir = os.path.join(w, "mut-run")
        shutil.rmtree(run_dir, ignore_errors=True)
        os.makedirs(os.path.join(run_dir, "checkpoints"))
        bad_ckpt = os.path.join(run_dir, "checkpoints", os.path.basename(ckpt))
        shutil.copy(ckpt, bad_ckpt)
        with open(os.path.join(run_dir, "checkpoints", "latest"), "w") as f:
            f.write(os.path.basename(ckpt) + "\n")
        what = f"checkpoint #{i} ({mutate(bad_ckpt, rng)})"
        out = os.path.join(w, "out.h5")
        if os.path.exists(out):
            os.remove(out)
        status, err, s = run([os.path.join(args.apps, "ddpm_eval"), "eps", "--checkpoint", bad_ckpt,
                              "--in", os.path.join(w, "in.h5"), "--out", out, "--threads", "1"], args.timeout)
        record("ddpm_eval", what, status, err, s)
        if i % 4 == 0:
            status, err, s = run(train_cmd(args, data, run_dir, steps=4), args.timeout)
            record("ddpm_train", what, status, err, s)

        # A damaged shard: ddpm_prepare verify, then ddpm_train on the dataset.
        bad_data = os.path.join(w, "mut-data")
        shutil.rmtree(bad_data, ignore_errors=True)
        shutil.copytree(data, bad_data)
        shard = os.path.join(bad_data, rng.choice(shards))
        what = f"shard #{i} ({mutate(shard, rng)})"
        status, err, s = run([os.path.join(args.apps, "ddpm_prepare"), "verify", "--data", bad_data, "--quiet"],
                             args.timeout)
        record("ddpm_prepare", what, status, err, s)
        train_dir = os.path.join(w, "mut-train")
        shutil.rmtree(train_dir, ignore_errors=True)
        status, err, s = run(train_cmd(args, bad_data, train_dir, steps=2), args.timeout)
        record("ddpm_train", what, status, err, s)
        if (i + 1) % 50 == 0:
            print(f"{i + 1}/{args.count} checkpoints and shards, {time.time() - started:.0f} s, "
                  f"{len(failures)} failures", flush=True)

    print(f"\n{args.count} damaged checkpoints and {args.count} damaged shards, {time.time() - started:.0f} s, "
          f"slowest run {slowest:.1f} s (timeout {args.timeout:.0f} s), apps from {args.apps}")
    for key in sorted(tally):
        print(f"  {key}: {tally[key]}")
    for f in failures[:20]:
        print("FAIL " + f)
    if failures:
        print(f"{len(failures)} failures")
        sys.exit(1)
    print("every run exited 0 or 2 with one error line; no crash, no sanitizer report, no hang")


if __name__ == "__main__":
    main()
