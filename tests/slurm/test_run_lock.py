"""A second train.sbatch job on the run directory of a job that is training is refused:
ddpm_train exits 2 with one line naming the holder (host, pid, start time), the script
does not requeue it and the job ends FAILED with exit code 2, while the first job trains
on untouched (each step once in metrics.jsonl) until it is cancelled."""
import os
import time

import slurm_util as s
from slurm_util import u

LONG = {"train.batch_size": 4, "train.total_steps": 100000, "train.checkpoint_every": 5, "train.log_every": 1}


def body(args):
    data = u.make_dataset(args)
    run_dir = os.path.join(args.workdir, "run")
    first = s.Job(args, "holder", 1, data, run_dir, LONG)
    s.wait_logged_step(first, run_dir, 4)
    holders = first.rank_pids()
    u.check(len(holders) == 1, f"the first job's ddpm_train processes: {holders}")
    started = time.time()
    second = s.Job(args, "second", 1, data, run_dir, LONG)
    info = second.wait_done(timeout=90)
    took = time.time() - started
    out = second.output()
    u.check(info["JobState"] == "FAILED" and info["ExitCode"] == "2:0", f"the second job: {second.summary()}\n{out}")
    lines = u.error_lines(out)
    u.check(len(lines) == 1 and "another job is using this run directory" in lines[0],
            f"the second job's error lines {lines}:\n{out}")
    u.check(f"pid {holders[0]}" in lines[0] and "host " in lines[0] and "started " in lines[0],
            f"the refusal does not name the holder (pid {holders[0]}): {lines[0]}")
    u.check("failed with status 2 (not requeued)" in out, f"the script's verdict:\n{out}")
    u.check(first.state() == "RUNNING", f"the first job stopped: {first.summary()}")
    steps = [m["step"] for m in u.metrics(run_dir)]
    u.check(steps == list(range(1, len(steps) + 1)), f"metrics.jsonl after the refusal: {steps}")
    print(f"ok   {second.summary()}, {took:.1f} s after sbatch: {lines[0]}")
    print(f"ok   the first job trains on: {first.summary()}, {len(steps)} steps logged once each")
    u.run(["scancel", first.id])
    first.wait_done(timeout=s.KILL_WAIT_S + 30)


if __name__ == "__main__":
    s.main(body)
