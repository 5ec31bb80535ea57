"""Faults from outside the job, on 2 ranks; each case ends with a resume that finishes
bitwise equal to an uninterrupted run (docs/operations.md, "Faults tested"):

  - shard_cut: a shard cut short while the job reads it (an NFS hiccup, a copy
    overwritten): one line naming the shard, exit 2, the newest checkpoint intact; once
    the file is back, the resume continues the same data stream;
  - readonly_checkpoints: the checkpoint directory turns read-only mid-run (the job
    runs as an unprivileged user, for whom permissions hold): a warning per failed
    checkpoint while training goes on, then exit 1 with one line naming the newest
    complete checkpoint; nothing of the earlier checkpoints is lost;
  - sigterm_in_write: SIGTERM to every rank while rank 0 writes a checkpoint (the
    slow_checkpoint fault holds the write open for 3 s): the write completes, the stop
    checkpoint is committed, exit 75, no temporary file is left;
  - die_in_allreduce: a rank kills itself halfway through backward with part of its
    all-reduce in flight: the job ends well within train.step_timeout_s, the output
    names the rank, and the newest checkpoint is intact;
  - clock_jump: the wall clock jumps 3 days forward and then 2 days back under the
    running job (libfaketime; the monotonic clock is left alone): the watchdog, which
    counts on the monotonic clock, does not fire, and train.log shows the jumps.
"""
import os
import shutil
import signal
import tempfile
import time

import mpi_util as u

RANKS = 2
STEPS = 24
CONFIG = {"train.batch_size": 8, "train.total_steps": STEPS, "train.checkpoint_every": 4,
          "train.keep_checkpoints": 8, "train.log_every": 1, "train.step_timeout_s": 8,
          "train.bucket_mb": 0.05}
NOBODY = 65534
FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"


def final(run_dir):
    return u.checkpoint_path(run_dir, STEPS)


def resume_and_compare(args, data, run_dir, ref, label):
    """Runs the job again (no fault) and checks it ends where the reference ended."""
    start = u.expected_resume_step(run_dir)
    r = u.train(args, RANKS, data, run_dir, CONFIG)
    u.expect_ok(r, f"{label}: resume")
    u.assert_bitwise_equal(final(run_dir), final(ref), f"{label}: resumed from step {start}")
    steps = [m["step"] for m in u.metrics(run_dir)]
    u.check(len(steps) == len(set(steps)), f"{label}: a step logged twice in metrics.jsonl")
    print(f"{label}: resumed from step {start}, final checkpoint bitwise equal to the uninterrupted run")


def wait_until(predicate, job, what, timeout=60):
    deadline = time.time() + timeout
    while not predicate():
        u.check(job.proc.poll() is None, f"the job ended (status {job.proc.returncode}) before {what}")
        u.check(time.time() < deadline, f"{what} did not happen within {timeout} s")
        time.sleep(0.005)


def shard_cut(args, data, ref):
    run_dir = os.path.join(args.workdir, "shard_cut")
    shard = os.path.join(data, "shard-00001-of-00002.h5")
    saved = shard + ".saved"
    shutil.copy(shard, saved)
    job = u.Job(args, RANKS, data, run_dir, CONFIG)
    try:
        u.wait_for_step(run_dir, 5, job.proc)
        os.truncate(shard, os.path.getsize(shard) // 3)
        status, _, err = job.wait(120)
    finally:
        job.kill()
        shutil.move(saved, shard)
    # Each rank that reads from the shard says so (one line each), naming it.
    lines = u.error_lines(err)
    u.check(status == u.EXIT_BAD_INPUT and 1 <= len(lines) <= RANKS and
            all(shard in l and "cut short or replaced" in l for l in lines),
            f"shard_cut: status {status}, stderr:\n{err}")
    line = lines[0]
    newest = u.expected_resume_step(run_dir)
    u.check(newest >= 4 and u.is_valid_checkpoint(u.checkpoint_path(run_dir, newest)),
            f"shard_cut: no intact checkpoint left (newest valid: {newest})")
    print(f"shard_cut: exit 2, '{line}'; newest checkpoint step {newest} intact")
    resume_and_compare(args, data, run_dir, ref, "shard_cut")


def as_nobody():
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]


def readonly_checkpoints(args, data, ref):
    # Root ignores permissions: the job runs as nobody, from a folder of its own under
    # /tmp with copies of the binary, the config and the data (the build tree may sit
    # where nobody cannot enter, /root say).
    home = tempfile.mkdtemp(prefix="ddpm-readonly-")
    try:
        os.chmod(home, 0o755)
        train = os.path.join(home, "ddpm_train")
        shutil.copy(args.ddpm_train, train)
        shutil.copy(u.TINY_CONFIG, os.path.join(home, "tiny.yaml"))
        own_data = os.path.join(home, "data")
        shutil.copytree(data, own_data)
        run_dir = os.path.join(home, "run")
        ckpt_dir = os.path.join(run_dir, "checkpoints")
        os.makedirs(ckpt_dir)
        for d in (run_dir, ckpt_dir):
            os.chown(d, NOBODY, NOBODY)
        def start():
            # Its cwd too: mpirun stops when it cannot enter the directory it started in.
            launcher = as_nobody() + u.mpirun_cmd(args, RANKS, [train])
            return u.Job(args, RANKS, own_data, run_dir, CONFIG, launcher=launcher,
                         config=os.path.join(home, "tiny.yaml"), cwd=home)

        job = start()
        try:
            try:
                u.wait_for_step(run_dir, 9, job.proc)
            except u.Failure as e:
                raise u.Failure(f"readonly_checkpoints: {e}; stderr:\n{job.wait(60)[2]}") from None
            os.chmod(ckpt_dir, 0o555)
            status, _, err = job.wait(120)
        finally:
            job.kill()
        os.chmod(ckpt_dir, 0o755)
        warnings = [l for l in err.splitlines() if "warning" in l and "checkpoint" in l]
        errors = u.error_lines(err)
        u.check(status == u.EXIT_INTERNAL and len(errors) == 1 and "ckpt-" in errors[0],
                f"readonly_checkpoints: status {status}, stderr:\n{err}")
        u.check(len(warnings) >= 1, f"readonly_checkpoints: no warning for the failed checkpoints:\n{err}")
        newest = u.expected_resume_step(run_dir)
        u.check(newest >= 4, f"readonly_checkpoints: newest valid checkpoint {newest}, files {os.listdir(ckpt_dir)}")
        # A write that had begun when the directory turned read-only cannot remove its
        # temporary file there; the next start does.
        left = [n for n in os.listdir(ckpt_dir) if n.endswith(".tmp")]
        print(f"readonly_checkpoints: {len(warnings)} warning(s), then exit 1: '{errors[0]}'; newest step {newest}; "
              f"left while read-only: {left or 'nothing'}")
        job = start()
        try:
            status, _, err = job.wait(120)
        finally:
            job.kill()
        u.check(status == 0, f"readonly_checkpoints: resume: exit status {status}\n{err}")
        u.assert_bitwise_equal(final(run_dir), final(ref), f"readonly_checkpoints: resumed from step {newest}")
        left = [n for n in os.listdir(ckpt_dir) if n.endswith(".tmp")]
        u.check(not left, f"readonly_checkpoints: the resume left {left}")
        print(f"readonly_checkpoints: resumed from step {newest}, final checkpoint bitwise equal to the "
              "uninterrupted run")
    finally:
        shutil.rmtree(home, ignore_errors=True)


def sigterm_in_write(args, data, ref):
    run_dir = os.path.join(args.workdir, "sigterm_in_write")
    ckpt_dir = os.path.join(run_dir, "checkpoints")
    env = {"DDPM_FAULT_INJECT": "slow_checkpoint:rank=0:iteration=0-"}
    job = u.Job(args, RANKS, data, run_dir, CONFIG, env=env)
    try:
        wait_until(lambda: os.path.isdir(ckpt_dir) and any(n.endswith(".h5.tmp") for n in os.listdir(ckpt_dir)),
                   job, "a checkpoint write")
        in_flight = [n for n in os.listdir(ckpt_dir) if n.endswith(".h5.tmp")]
        for pid in job.rank_pids().values():
            os.kill(pid, signal.SIGTERM)
        status, _, err = job.wait(120)
    finally:
        job.kill()
    u.check(status == u.EXIT_REQUEUE, f"sigterm_in_write: status {status}, stderr:\n{err}")
    left = [n for n in os.listdir(ckpt_dir) if n.endswith(".tmp")]
    u.check(not left, f"sigterm_in_write: temporary files left: {left}")
    written = in_flight[0][:-len(".tmp")]
    u.check(u.is_valid_checkpoint(os.path.join(ckpt_dir, written)),
            f"sigterm_in_write: the checkpoint being written ({written}) was not completed")
    newest = u.expected_resume_step(run_dir)
    print(f"sigterm_in_write: SIGTERM during {in_flight[0]}: it was completed, exit 75, "
          f"stop checkpoint step {newest}, no .tmp left")
    resume_and_compare(args, data, run_dir, ref, "sigterm_in_write")


def die_in_allreduce(args, data, ref):
    run_dir = os.path.join(args.workdir, "die_in_allreduce")
    env = {"DDPM_FAULT_INJECT": "die_in_allreduce:rank=1:iteration=10"}
    start = time.time()
    job = u.Job(args, RANKS, data, run_dir, CONFIG, env=env)
    try:
        status, _, err = job.wait(120)
    finally:
        job.kill()
    took = time.time() - start
    u.check(status != 0, "die_in_allreduce: the job succeeded")
    u.check("injected fault die_in_allreduce" in err, f"die_in_allreduce: the fault did not fire:\n{err}")
    named = [l for l in err.splitlines() if "rank 1" in l and ("exited on signal" in l or "made no progress" in l
                                                                 or "stopped reporting" in l)]
    u.check(named, f"die_in_allreduce: nothing names rank 1:\n{err}")
    u.check(took < CONFIG["train.step_timeout_s"] + 40, f"die_in_allreduce: the job took {took:.0f} s to end")
    newest = u.expected_resume_step(run_dir)
    u.check(newest >= 8, f"die_in_allreduce: newest intact checkpoint is step {newest}")
    print(f"die_in_allreduce: the job ended {took:.1f} s after its start (status {status}); '{named[0].strip()}'; "
          f"newest checkpoint step {newest} intact")
    resume_and_compare(args, data, run_dir, ref, "die_in_allreduce")


def clock_jump(args, data, ref):
    if not os.path.exists(FAKETIME):
        raise u.Failure(f"clock_jump needs libfaketime ({FAKETIME}; Debian package libfaketime)")
    run_dir = os.path.join(args.workdir, "clock_jump")
    offset_file = os.path.join(args.workdir, "faketime_offset")
    with open(offset_file, "w") as f:
        f.write("+0\n")
    env = {"LD_PRELOAD": FAKETIME, "FAKETIME_TIMESTAMP_FILE": offset_file, "FAKETIME_NO_CACHE": "1",
           "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_DONT_RESET": "1"}
    slow = dict(CONFIG, **{"train.total_steps": STEPS})
    job = u.Job(args, RANKS, data, run_dir, slow, env=env)
    try:
        u.wait_for_step(run_dir, 4, job.proc)
        with open(offset_file, "w") as f:
            f.write("+3d\n")
        u.wait_for_step(run_dir, 10, job.proc)
        with open(offset_file, "w") as f:
            f.write("+1d\n")
        status, _, err = job.wait(120)
    finally:
        job.kill()
    u.expect_ok(type("R", (), {"returncode": status, "stderr": err})(), "clock_jump")
    days = sorted({line[1:11] for line in u.read_log(run_dir).splitlines() if line.startswith("[")})
    u.check(len(days) >= 2, f"clock_jump: train.log shows no jump (dates {days})")
    u.assert_bitwise_equal(final(run_dir), final(ref), "clock_jump")
    print(f"clock_jump: train.log dates {days}; no watchdog abort; final checkpoint bitwise equal")


CASES = [shard_cut, readonly_checkpoints, sigterm_in_write, die_in_allreduce, clock_jump]


def main(args):
    data = u.make_dataset(args)
    os.chmod(args.workdir, 0o755)
    ref = os.path.join(args.workdir, "reference")
    u.expect_ok(u.train(args, RANKS, data, ref, CONFIG), "reference run")
    only = os.environ.get("DDPM_FAULT_CASES")
    for case in CASES:
        if only and case.__name__ not in only.split(","):
            continue
        t0 = time.time()
        case(args, data, ref)
        print(f"  ({case.__name__}: {time.time() - t0:.1f} s)")


if __name__ == "__main__":
    u.main_wrapper(main)
