"""scancel in the middle of a 2-rank train.sbatch job: Slurm sends SIGTERM to the ranks
and to the batch shell (which passes it on as SIGUSR1), the ranks stop at the next step, rank 0 commits a checkpoint and
the job ends well within KillWait (no SIGKILL), CANCELLED and not requeued by the script;
`latest` names that complete checkpoint, and a new sbatch on the run directory resumes
from it and finishes.

Then under DDPM_LAUNCHER=mpirun, where a plain scancel also hands mpirun itself Slurm's
SIGTERM and mpirun kills the ranks at once (no checkpoint, docs/operations.md), the stop
that works instead: `scancel --batch --signal=TERM` reaches the batch shell only, which
stops the ranks through train.sh after a checkpoint and does not requeue the job."""
import os
import time

import slurm_util as s
from slurm_util import u

RANKS = 2
LONG = {"train.batch_size": 8, "train.total_steps": 100000, "train.checkpoint_every": 7, "train.log_every": 1}


def body(args):
    data = u.make_dataset(args)
    run_dir = os.path.join(args.workdir, "run")
    job = s.Job(args, "cancelled", RANKS, data, run_dir, LONG)
    s.wait_logged_step(job, run_dir, 12)
    sent = time.time()
    r = u.run(["scancel", job.id])
    u.check(r.returncode == 0, f"scancel: {r.stderr}")
    while job.rank_pids():
        u.check(time.time() - sent < s.KILL_WAIT_S + 10,
                f"the ranks still run {time.time() - sent:.0f} s after scancel")
        time.sleep(0.05)
    ranks_gone = time.time() - sent
    info = job.wait_done(timeout=s.KILL_WAIT_S + 30)
    took = time.time() - sent
    out = job.output()
    u.check(info["JobState"] == "CANCELLED" and info["Restarts"] == "0", f"after scancel: {job.summary()}\n{out}")
    u.check(ranks_gone < s.KILL_WAIT_S, f"the ranks took {ranks_gone:.1f} s to exit, KillWait is {s.KILL_WAIT_S} s")
    u.check("so it is not requeued" in out and "requeueing" not in out, f"the script's verdict:\n{out}")
    stops = s.stop_lines(run_dir)
    # SIGTERM from Slurm, or SIGUSR1 from the batch shell through train.sh and srun:
    # whichever reaches a rank first.
    u.check(len(stops) == 1, f"stop lines {stops}")
    step = stops[0][0]
    u.check(u.expected_resume_step(run_dir) == step, f"the newest complete checkpoint is step "
                                                     f"{u.expected_resume_step(run_dir)}, the stop was at {step}")
    with open(os.path.join(run_dir, "checkpoints", "latest")) as f:
        u.check(f.read().strip() == f"ckpt-{step:08d}.h5", "latest does not name the stop's checkpoint")
    _, attrs = u.read_checkpoint(u.checkpoint_path(run_dir, step))  # crc32 of every tensor
    u.check(attrs["step"] == step, f"the checkpoint says step {attrs['step']}")
    print(f"ok   scancel: stopped on {stops[0][1]}, ranks exited {ranks_gone:.1f} s later "
          f"(KillWait {s.KILL_WAIT_S} s), the job ended after "
          f"{took:.1f} s; checkpoint of step {step} complete; {job.summary()}")

    total = step + 5
    again = s.Job(args, "resumed", RANKS, data, run_dir, dict(LONG, **{"train.total_steps": total}))
    info = again.wait_done(timeout=120)
    u.check(info["JobState"] == "COMPLETED", f"the new sbatch: {again.summary()}\n{again.output()}")
    resumed = u.resumed_steps(u.read_log(run_dir))
    u.check(resumed == [0, step], f"starts in train.log at {resumed}, expected [0, {step}]")
    s.steps_once(run_dir, total, "cancelled + resumed")
    print(f"ok   a new sbatch resumed at step {step} and finished at {total}: {again.summary()}")

    run_dir = os.path.join(args.workdir, "mpirun")
    job = s.Job(args, "mpirun", RANKS, data, run_dir, LONG, launcher="mpirun")
    s.wait_logged_step(job, run_dir, 12)
    r = u.run(["scancel", "--batch", "--signal=TERM", job.id])
    u.check(r.returncode == 0, f"scancel --batch --signal=TERM: {r.stderr}")
    info = job.wait_done(timeout=s.KILL_WAIT_S + 30)
    out = job.output()
    u.check(info["Restarts"] == "0" and info["ExitCode"] == "75:0" and "so it is not requeued" in out,
            f"mpirun, scancel --batch --signal=TERM: {job.summary()}\n{out}")
    stops = s.stop_lines(run_dir)
    u.check(len(stops) == 1 and u.expected_resume_step(run_dir) == stops[0][0],
            f"mpirun: stop lines {stops}, newest complete checkpoint {u.expected_resume_step(run_dir)}")
    print(f"ok   mpirun: scancel --batch --signal=TERM stopped the ranks at step {stops[0][0]} after a complete "
          f"checkpoint, not requeued: {job.summary()}")


if __name__ == "__main__":
    s.main(body)
