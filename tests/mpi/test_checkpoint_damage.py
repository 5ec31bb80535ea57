"""Damaged checkpoints and failed writes, on 2 ranks.

  - the latest checkpoint truncated, with a flipped byte in a tensor's data (in
    optimizer/v, which only a full read-back checks) or in a root attribute: the checksums
    catch it, the run resumes from the one before and ends bitwise where an
    uninterrupted run ends;
  - every checkpoint damaged: bad input (one line, exit 2), nothing deleted;
  - the disk full (RLIMIT_FSIZE below a checkpoint's size): each failed write is a
    warning and training goes on; the last one fails the run (exit 1, one error line
    naming the newest complete checkpoint); the earlier checkpoints, `latest` included,
    are untouched, no temporary file is left, and a later run resumes from them.
"""
import hashlib
import os
import shutil
import sys

import h5py

import mpi_util as u

RANKS = 2
CONFIG = {"train.batch_size": 8, "train.total_steps": 6, "train.checkpoint_every": 2,
          "train.keep_checkpoints": 4, "train.log_every": 2}


def flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x10]))


def data_offset(path, dataset):
    """File offset of a dataset's first data byte (contiguous or chunked)."""
    with h5py.File(path, "r") as f:
        ds = f[dataset]
        offset = ds.id.get_offset()
        if offset is None:
            offset = ds.id.get_chunk_info(0).byte_offset
        return offset + ds.dtype.itemsize * (ds.size // 2)  # the middle of the tensor


def largest_tensor(path, group):
    with h5py.File(path, "r") as f:
        return max((f[group][n].size, f"{group}/{n}") for n in f[group])[1]


def truncate(path):
    os.truncate(path, os.path.getsize(path) // 2)


def flip_data(path):
    flip(path, data_offset(path, largest_tensor(path, "optimizer/v")))


def flip_metadata(path):
    """A byte of the run's config text, a root attribute: 'seed: 1' would become
    'seed: !' (the 1.10 file format's metadata checksums must catch it)."""
    with open(path, "rb") as f:
        offset = f.read().find(b"seed: ")
    u.check(offset > 0, f"{path}: no config attribute found")
    flip(path, offset + len("seed: "))


def digests(run_dir):
    ckpt_dir = os.path.join(run_dir, "checkpoints")
    out = {}
    for name in sorted(os.listdir(ckpt_dir)):
        with open(os.path.join(ckpt_dir, name), "rb") as f:
            out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


def copy_run(base, args, name):
    run_dir = os.path.join(args.workdir, name)
    shutil.copytree(base, run_dir)
    return run_dir


def with_file_size_limit(limit, command):
    """command under RLIMIT_FSIZE = limit: writes past it fail with EFBIG, as on a full
    disk (ddpm_train ignores SIGXFSZ). Set per rank, not on mpirun, whose own shared
    memory files must not hit the limit."""
    setter = ("import os, resource, sys; "
              f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, resource.RLIM_INFINITY)); "
              "os.execv(sys.argv[1], sys.argv[1:])")
    return [sys.executable, "-c", setter] + command


def body(args):
    data = u.make_dataset(args)
    base = os.path.join(args.workdir, "base")
    u.expect_ok(u.train(args, RANKS, data, base, CONFIG), "6 steps")
    u.check(u.checkpoint_steps(base) == [2, 4, 6], f"checkpoints {u.checkpoint_steps(base)}")
    reference = os.path.join(args.workdir, "reference")
    to8 = dict(CONFIG, **{"train.total_steps": 8})
    u.expect_ok(u.train(args, RANKS, data, reference, to8), "8 steps")

    for label, damage in (("truncated", truncate), ("flipped tensor byte", flip_data),
                          ("flipped metadata byte", flip_metadata)):
        run_dir = copy_run(base, args, label.replace(" ", "_"))
        damage(u.checkpoint_path(run_dir, 6))
        r = u.train(args, RANKS, data, run_dir, to8)
        u.expect_ok(r, f"resume after the latest was {label}")
        log = u.read_log(run_dir)
        u.check("warning: skipping checkpoint: " + u.checkpoint_path(run_dir, 6) in log,
                f"{label}: no warning about ckpt-00000006.h5:\n{log}")
        u.check(u.resumed_steps(log)[-1] == 4, f"{label}: resumed at {u.resumed_steps(log)[-1]}, expected 4")
        u.assert_bitwise_equal(u.checkpoint_path(run_dir, 8), u.checkpoint_path(reference, 8), label)
        warning = next(line for line in log.splitlines() if "skipping checkpoint" in line)
        print(f"ok   latest {label}: resumed at step 4, final bitwise equal; {warning.split('] ', 1)[1]}")

    # Every checkpoint damaged: refuse, touch nothing.
    run_dir = copy_run(base, args, "all_damaged")
    for step in (2, 4, 6):
        truncate(u.checkpoint_path(run_dir, step))
    before = digests(run_dir)
    r = u.train(args, RANKS, data, run_dir, to8)
    line = u.expect_bad_input(r, "none of the 3 checkpoint(s)", "all damaged")
    u.check(digests(run_dir) == before, "all damaged: the checkpoints directory changed")
    print(f"ok   all damaged: {line}")

    # A full disk: ckpt-8 and ckpt-10 cannot be written.
    run_dir = copy_run(base, args, "disk_full")
    before = digests(run_dir)
    limit = os.path.getsize(u.checkpoint_path(run_dir, 6)) * 2 // 3
    to10 = dict(CONFIG, **{"train.total_steps": 10})
    cmd = u.mpirun_cmd(args, RANKS, with_file_size_limit(limit, u.train_args(args, data, run_dir, to10)))
    r = u.run(cmd, env=u.child_env())
    log = u.read_log(run_dir)
    lines = u.error_lines(r.stderr)
    u.check(r.returncode == u.EXIT_INTERNAL, f"disk full: status {r.returncode}, expected 1:\n{r.stderr}")
    u.check("warning: checkpoint at step 8 failed" in log and "the previous checkpoint is intact" in log,
            f"disk full: no warning for step 8:\n{log}")
    u.check("step 10/10" in log, f"disk full: training did not go on to step 10:\n{log}")
    u.check(len(lines) == 1 and "checkpoint at step 10 could not be written" in lines[0] and
            u.checkpoint_path(run_dir, 6) in lines[0], f"disk full: error lines {lines}")
    u.check(digests(run_dir) == before, f"disk full: the checkpoints directory changed: {sorted(digests(run_dir))}")
    print(f"ok   disk full: {lines[0]}")
    r = u.train(args, RANKS, data, run_dir, to10)
    u.expect_ok(r, "resume after the disk was freed")
    u.check(u.resumed_steps(u.read_log(run_dir))[-1] == 6, "after the disk was freed: did not resume at step 6")
    print("ok   after the disk was freed: resumed at step 6 and finished")


if __name__ == "__main__":
    u.main_wrapper(body)
