"""Shared pieces of the MPI tests: the command line every driver takes, a small dataset
made from generated PNG files, ddpm_train under mpirun (with the processes found by
rank, for signals), and checkpoints read and verified with h5py."""
import argparse
import glob
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.abspath(os.path.join(HERE, os.pardir, os.pardir))
TINY_CONFIG = os.path.join(SOURCE_DIR, "configs", "tiny.yaml")

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_REQUEUE = 0, 1, 2, 75
GROUPS = ("params", "ema", "optimizer/m", "optimizer/v")


class Failure(AssertionError):
    pass


def check(cond, message):
    if not cond:
        raise Failure(message)


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--ddpm-train", required=True)
    p.add_argument("--ddpm-prepare", required=True)
    p.add_argument("--mpirun", default="mpirun")
    p.add_argument("--workdir", required=True)
    args = p.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    return args


def main_wrapper(body):
    start = time.time()
    try:
        body(parse_args())
    except Failure as e:
        print(f"FAIL {e}", file=sys.stderr)
        sys.exit(1)
    print(f"all checks passed ({time.time() - start:.1f} s)")


# --- data -----------------------------------------------------------------------------

def write_png(path, img):
    """An 8-bit RGB PNG, enough for ddpm_prepare folder (no imaging library needed)."""
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) +
                chunk(b"IEND", b""))


def make_dataset(args, count=64, resolution=16, shards=2):
    """count distinct RGB images of resolution^2, prepared into `shards` shards."""
    src, out = os.path.join(args.workdir, "pngs"), os.path.join(args.workdir, "data")
    os.makedirs(src)
    yy, xx = np.mgrid[0:resolution, 0:resolution]
    for i in range(count):
        img = np.stack([(xx * (i % 7 + 1) * 9 + yy * 13 + c * 40 + i * 11) % 256 for c in range(3)], -1)
        write_png(os.path.join(src, f"img{i:04d}.png"), img.astype(np.uint8))
    r = run([args.ddpm_prepare, "folder", "--src", src, "--out", out, "--shards", str(shards), "--quiet"])
    check(r.returncode == 0, f"ddpm_prepare failed:\n{r.stderr}")
    return out


# --- running ddpm_train ---------------------------------------------------------------

def run(cmd, timeout=300, env=None, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout,
                          env=env, **kw)


def train_args(args, data, run_dir, overrides, config=TINY_CONFIG):
    cmd = [args.ddpm_train, "--config", config, "--run-dir", run_dir, "--no-progress",
           "--set", f"data.path={data}"]
    for key, value in overrides.items():
        cmd += ["--set", f"{key}={value}"]
    return cmd


# One thread per rank, no spinning OpenMP workers: ranks outnumber the cores here.
RANK_ENV = {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "passive"}


def mpirun_cmd(args, ranks, command, env=None):
    cmd = [args.mpirun, "--oversubscribe", "--allow-run-as-root", "-np", str(ranks)]
    for name in list(RANK_ENV) + list(env or {}):
        cmd += ["-x", name]
    return cmd + command


def child_env(env=None):
    e = dict(os.environ)
    e.update(RANK_ENV)
    e.update(env or {})
    return e


def train(args, ranks, data, run_dir, overrides, env=None, timeout=300):
    """Runs ddpm_train on `ranks` ranks to the end; returns the CompletedProcess."""
    cmd = mpirun_cmd(args, ranks, train_args(args, data, run_dir, overrides), env)
    return run(cmd, timeout=timeout, env=child_env(env))


def expect_ok(r, label):
    check(r.returncode == 0, f"{label}: exit status {r.returncode}\n{r.stderr}")


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("ddpm_train: ")]


def expect_bad_input(r, must_contain, label):
    """Bad input: exit status 2 and exactly one error line, containing must_contain; returns it."""
    lines = error_lines(r.stderr)
    check(r.returncode == EXIT_BAD_INPUT and len(lines) == 1 and must_contain in lines[0],
          f"{label}: status {r.returncode}, stderr:\n{r.stderr}")
    return lines[0]


class Job:
    """ddpm_train under mpirun in the background, in a session of its own so that
    whatever is left of it can be killed at the end."""

    def __init__(self, args, ranks, data, run_dir, overrides, env=None, wrapper=None, launcher=None,
                 config=TINY_CONFIG, cwd=None):
        """launcher: a command that starts the job instead of mpirun (launch/train.sh),
        given the ddpm_train arguments after it."""
        command = train_args(args, data, run_dir, overrides, config)
        self.ranks = ranks
        self.binary = os.path.realpath(args.ddpm_train)
        full = launcher + command[1:] if launcher else mpirun_cmd(args, ranks, (wrapper or []) + command, env)
        self.proc = subprocess.Popen(full,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=child_env(env), start_new_session=True, cwd=cwd)
        self.started = time.time()

    def rank_pids(self, timeout=30):
        """{rank: pid} of the ddpm_train processes, found through /proc."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = {}
            for pid in session_pids(self.proc.pid):
                try:
                    if os.path.realpath(f"/proc/{pid}/exe") != self.binary:
                        continue
                    with open(f"/proc/{pid}/environ", "rb") as f:
                        env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
                    found[int(env[b"OMPI_COMM_WORLD_RANK"])] = pid
                except (OSError, KeyError, ValueError):
                    continue
            if len(found) == self.ranks:
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise Failure(f"could not find the {self.ranks} ranks of the job")

    def wait(self, timeout):
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            out, err = self.proc.communicate()
            raise Failure(f"the job did not end within {timeout} s; stderr:\n{err}")
        return self.proc.returncode, out, err

    def kill(self):
        for pid in session_pids(self.proc.pid) + [self.proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def session_pids(session_id):
    """Processes of the session `session_id` (what Job started)."""
    pids = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[3]) == session_id:  # field 6 of stat: the session id
                pids.append(int(stat.split("/")[2]))
        except (OSError, IndexError, ValueError):
            continue
    return pids


def resumed_steps(log_text):
    """The step of every 'resuming at step S' line, in order (0 for a fresh start)."""
    steps = []
    for line in log_text.splitlines():
        m = re.search(r"\] (?:training:|resuming at step (\d+) )", line)
        if m:
            steps.append(int(m.group(1)) if m.group(1) else 0)
    return steps


def read_log(run_dir):
    """train.log, or "" before there is one."""
    path = os.path.join(run_dir, "train.log")
    if not os.path.exists(path):
        return ""
    with open(path) as f:
        return f.read()


def last_logged_step(run_dir, starts_before=0):
    """The last 'step N/' line of the latest start in train.log (its start step if none);
    -1 until train.log shows more than `starts_before` starts."""
    log = read_log(run_dir)
    starts = resumed_steps(log)
    if len(starts) <= starts_before:
        return -1
    tail = re.split(r"\] (?:training:|resuming at step \d+ )", log)[-1]
    steps = [int(s) for s in re.findall(r"\] step (\d+)/", tail)]
    return steps[-1] if steps else starts[-1]


def wait_for_step(run_dir, step, proc, starts_before=0, timeout=60):
    """Waits until a start after the first `starts_before` ones has logged `step`
    (log_every 1) while the process `proc` (a Popen) runs."""
    deadline = time.time() + timeout
    while last_logged_step(run_dir, starts_before) < step:
        if proc.poll() is not None:
            raise Failure(f"the job ended (status {proc.returncode}) before step {step}")
        if time.time() > deadline:
            raise Failure(f"step {step} not reached within {timeout} s")
        time.sleep(0.01)


def metrics(run_dir):
    import json
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


# --- checkpoints ----------------------------------------------------------------------

def checkpoint_path(run_dir, step):
    return os.path.join(run_dir, "checkpoints", f"ckpt-{step:08d}.h5")


def read_checkpoint(path):
    """{group: {name: array}}, the root attributes; Failure if a tensor does not match
    its crc32 (as ddpm checks it)."""
    tensors = {}
    with h5py.File(path, "r") as f:
        attrs = {k: f.attrs[k] for k in f.attrs}
        for group in GROUPS:
            tensors[group] = {}
            for name, ds in f[group].items():
                a = ds[()]
                crc = zlib.crc32(np.ascontiguousarray(a, dtype="<f4").tobytes())
                check(int(ds.attrs["crc32"]) == crc, f"{path}: {group}/{name} does not match its crc32")
                tensors[group][name] = a
    return tensors, attrs


def is_valid_checkpoint(path):
    try:
        read_checkpoint(path)
        return True
    except Exception:  # noqa: BLE001 - any failure to read back means invalid
        return False


def checkpoint_steps(run_dir):
    names = glob.glob(os.path.join(run_dir, "checkpoints", "ckpt-*.h5"))
    return sorted(int(re.search(r"ckpt-(\d+)\.h5$", n).group(1)) for n in names)


def expected_resume_step(run_dir):
    """What a restart must resume from: the checkpoint `latest` names if it reads back
    intact, else the newest one that does; 0 when there is none."""
    ckpt_dir = os.path.join(run_dir, "checkpoints")
    latest = os.path.join(ckpt_dir, "latest")
    if os.path.exists(latest):
        with open(latest) as f:
            name = f.read().strip()
        m = re.fullmatch(r"ckpt-(\d+)\.h5", name)
        if m and is_valid_checkpoint(os.path.join(ckpt_dir, name)):
            return int(m.group(1))
    for step in reversed(checkpoint_steps(run_dir)):
        if is_valid_checkpoint(checkpoint_path(run_dir, step)):
            return step
    return 0


def assert_bitwise_equal(path_a, path_b, label):
    a, attrs_a = read_checkpoint(path_a)
    b, attrs_b = read_checkpoint(path_b)
    for key in ("step", "iteration", "data_epoch", "data_position", "nonfinite_skips"):
        check(attrs_a[key] == attrs_b[key], f"{label}: attribute {key}: {attrs_a[key]} vs {attrs_b[key]}")
    for group in GROUPS:
        check(a[group].keys() == b[group].keys(), f"{label}: {group} holds other tensors")
        for name in a[group]:
            same = np.array_equal(a[group][name].view(np.uint32), b[group][name].view(np.uint32))
            check(same, f"{label}: {group}/{name} differs "
                        f"(max |diff| {np.abs(a[group][name] - b[group][name]).max():.3g})")
