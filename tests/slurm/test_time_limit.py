"""The time limit, for real: a 2-rank train.sbatch job (srun) submitted with --time=1
and --signal=B:USR1@24 (the script's own form, @120 there) gets SIGUSR1 from Slurm in its
batch shell before the limit, which passes it on through train.sh and srun; the ranks
commit a checkpoint, exit 75 and the script requeues the job; each start (SLURM_RESTART_COUNT 0, 1, 2, ...) resumes
where the last one stopped, and the job finishes. Its final checkpoint is bitwise that of
an uninterrupted `mpirun -np 2` run, and metrics.jsonl holds every step exactly once.

Slurm's timing, which this test plans around (22.05, src/slurmctld):
  - slurmctld checks time limits every 30 s (PERIODIC_TIMEOUT) from its start, and sends
    the --signal warning at the first check where now + 24 + 30 >= the end time, i.e. once
    the job has run 60 - 54 = 6 s (a warning before srun has started the step would be
    lost);
  - a requeued job may start again cred_expire + 1 s later (this cluster: 17 s), so each
    later start runs ~12 s (~9-10 s of training) before the next check signals it.
The first start is timed against the checks by when it is submitted, and the number of
steps comes from the measured speed so that the job needs about 2.5 starts: two requeues
when the speed holds, at least one (which this test requires) when it does not."""
import os
import re
import statistics
import time

import slurm_util as s
from slurm_util import u

RANKS = 2
BATCH = 8
BASE = {"train.batch_size": BATCH, "train.checkpoint_every": 100000, "train.log_every": 1}
WARN_S = 24
CHECK_PERIOD_S = 30.0
STARTUP_S = 1.5      # sbatch to training, under srun (measured 1-2 s here)
SUBMIT_TO_RUN_S = 2  # sbatch until the job runs (the scheduler's batch delay)
CRED_EXPIRE_S = int(os.environ.get("DDPM_SLURM_CRED_EXPIRE", "17"))
# Training time of each start after the first: from its restart (requeue + cred_expire
# + 1, + the scheduler's second) to the next check.
LATER_S = CHECK_PERIOD_S - (CRED_EXPIRE_S + 2.5) - STARTUP_S
FIRST_S = 6.0        # training time of the first start (at least 6 - STARTUP_S)


def step_seconds(run_dir):
    """The median time of a training step (from metrics.jsonl's throughput)."""
    return statistics.median(BATCH / m["img_per_s"] for m in u.metrics(run_dir) if m["step"] > 2)


def body(args):
    started = float(os.environ.get("DDPM_SLURMCTLD_STARTED", "0"))
    u.check(started > 0, "DDPM_SLURMCTLD_STARTED is not set (run under tests/slurm/cluster.sh)")
    u.check(LATER_S >= 4, f"cred_expire {CRED_EXPIRE_S} s leaves the later starts only {LATER_S:.1f} s")
    data = u.make_dataset(args)
    calibration = os.path.join(args.workdir, "calibration")
    u.expect_ok(u.train(args, RANKS, data, calibration, dict(BASE, **{"train.total_steps": 40})), "calibration")
    # + 4 s: the first start can be planned longer, not shorter, when the reference runs faster.
    steps = max(60, round((FIRST_S + 1.5 * LATER_S + 4) / step_seconds(calibration)))
    config = dict(BASE, **{"train.total_steps": steps})
    reference = os.path.join(args.workdir, "reference")
    u.expect_ok(u.train(args, RANKS, data, reference, config), "uninterrupted mpirun -np 2")
    needs = steps * step_seconds(reference)
    print(f"     {steps} steps, {needs:.1f} s of training uninterrupted; the later starts train ~{LATER_S:.1f} s each")

    # The first start trains `first` s before a check: what the job needs beyond 1.5 later starts.
    # At most 24 s: a start 30 s before its check would be signalled at the check before.
    first = min(24.0, max(FIRST_S, needs - 1.5 * LATER_S))
    k = 1
    while started + k * CHECK_PERIOD_S - first - STARTUP_S - SUBMIT_TO_RUN_S < time.time():
        k += 1
    submit_at = started + k * CHECK_PERIOD_S - first - STARTUP_S - SUBMIT_TO_RUN_S
    time.sleep(max(0.0, submit_at - time.time()))
    run_dir = os.path.join(args.workdir, "run")
    job = s.Job(args, "timelimit", RANKS, data, run_dir, config,
                sbatch_opts=["--time=1", f"--signal=B:USR1@{WARN_S}"])
    info = job.wait_done(timeout=240)
    out = job.output()
    print(f"     {job.summary()}")
    u.check(info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", f"{job.summary()}\n{out}")
    starts = job.starts()
    restarts = int(info["Restarts"])
    u.check(restarts >= 1, f"the job was never requeued: the time-limit warning did not stop it\n{out}")
    u.check(starts == [(i + 1, i, RANKS) for i in range(restarts + 1)],
            f"starts (start, SLURM_RESTART_COUNT, ranks) {starts}, Restarts={restarts}")
    stops = s.stop_lines(run_dir)
    u.check(len(stops) == restarts and all(sig == "SIGUSR1" for _, sig in stops),
            f"{restarts} requeues but stop lines {stops}")
    u.check(out.count("ddpm: stopped after a checkpoint; requeueing job") == restarts, f"the script's lines:\n{out}")
    u.check("ddpm: training finished" in out, f"the last start did not finish:\n{out}")
    resumed = u.resumed_steps(u.read_log(run_dir))
    u.check(resumed == [0] + [step for step, _ in stops], f"starts at {resumed}, stops at {stops}")
    s.steps_once(run_dir, steps, "requeued at the time limit")
    u.assert_bitwise_equal(u.checkpoint_path(run_dir, steps), u.checkpoint_path(reference, steps),
                           "requeued at the time limit vs uninterrupted")
    # When each stop came, from train.log's timestamps: seconds after its start began.
    log = u.read_log(run_dir)
    begins = re.findall(r"^\[([^\]]+)\] (?:training:|resuming at step)", log, re.M)
    ends = re.findall(r"^\[([^\]]+)\] stopping at step", log, re.M)
    stamp = lambda t: time.mktime(time.strptime(t, "%Y-%m-%d %H:%M:%S"))  # noqa: E731
    ran = [f"{stamp(e) - stamp(b):.0f} s" for b, e in zip(begins, ends)]
    print(f"ok   job {job.id}: SLURM_RESTART_COUNT {[c for _, c, _ in starts]}, stopped by the time-limit warning "
          f"at steps {[st for st, _ in stops]} ({', '.join(ran)} into each start), finished at {steps}; "
          f"each step once in metrics.jsonl; final checkpoint bitwise equal to the uninterrupted run")
    if restarts < 2:
        print(f"note the job needed only {restarts + 1} starts (faster than measured)")


if __name__ == "__main__":
    s.main(body)
