"""Requeue onto fewer ranks: a 2-rank train.sbatch job is stopped and requeued by the
script, its allocation is cut to 1 task while it waits to start again (scontrol update
NumTasks=1 TasksPerNode=1), and the requeued job (SLURM_RESTART_COUNT=1) resumes from the
2-rank checkpoint on 1 rank with the same data stream: at every step the same examples,
timesteps and noise, so each logged loss is that of an uninterrupted 2-rank run up to
float32 round-off, and the final data position and epoch are the same. (Not bitwise: the
order of the gradient sums changes with the ranks, tests/mpi/test_equivalence.py.)

Twice: with srun, stopped the way --signal=USR1@N does it (SIGUSR1 to the job steps:
`scancel --signal=USR1`), and with DDPM_LAUNCHER=mpirun, whose ranks are no job step,
stopped the way --signal=B:USR1@N does it (SIGUSR1 to the batch shell only: `scancel
--batch --signal=USR1`), which passes it on through train.sh and mpirun."""
import os
import time

import slurm_util as s
from slurm_util import u

STEPS = 37  # 296 images of 64: the data position ends mid-epoch
CONFIG = {"train.batch_size": 8, "train.total_steps": STEPS, "train.checkpoint_every": 100000,
          "train.log_every": 1}
# The loss of one step changes by percents from one batch (or noise draw) to the next; the
# order of the sums changes it by ~1e-7 (test_equivalence.py), below the 6 significant
# digits metrics.jsonl keeps, and the weights that walk apart by round-off after the
# resume by a little more.
LOSS_RTOL = 1e-4


def stop_and_shrink(args, data, launcher, scancel_opts):
    run_dir = os.path.join(args.workdir, launcher)
    job = s.Job(args, f"ranks-{launcher}", 2, data, run_dir, CONFIG, launcher=launcher)
    s.wait_logged_step(job, run_dir, 8)
    r = u.run(["scancel"] + scancel_opts + [job.id])
    u.check(r.returncode == 0, f"scancel {' '.join(scancel_opts)}: {r.stderr}")
    deadline = time.time() + 60
    while True:  # requeued: pending again, until BeginTime (cred_expire) has passed
        info = job.info()
        if info.get("JobState") == "PENDING" and info.get("Restarts") == "1":
            break
        u.check(time.time() < deadline and info.get("JobState") not in s.FINAL_STATES,
                f"the job was not requeued: {job.summary()}\n{job.output()}")
        time.sleep(0.05)
    r = u.run(["scontrol", "update", f"JobId={job.id}", "NumTasks=1", "TasksPerNode=1", "NumCPUs=1",
               "MinCPUsNode=1"])
    u.check(r.returncode == 0, f"scontrol update NumTasks=1: {r.stderr}")
    print(f"     {launcher}: stopped by scancel {' '.join(scancel_opts)}, requeued ({job.summary()}); "
          "cut to 1 task while pending", flush=True)
    return job, run_dir


def check_resumed(job, run_dir, reference, launcher):
    info = job.wait_done(timeout=120)
    out = job.output()
    u.check(info["JobState"] == "COMPLETED" and info["Restarts"] == "1", f"{launcher}: {job.summary()}\n{out}")
    u.check(job.starts() == [(1, 0, 2), (2, 1, 1)],
            f"{launcher}: starts (start, SLURM_RESTART_COUNT, ranks) {job.starts()}\n{out}")
    shown = {"srun": "srun --ntasks={} ", "mpirun": "mpirun -np {} "}[launcher]
    u.check(f"train.sh: {shown.format(2)}" in out and f"train.sh: {shown.format(1)}" in out,
            f"{launcher}: the launches:\n{out}")
    stops = s.stop_lines(run_dir)
    u.check(len(stops) == 1 and stops[0][1] == "SIGUSR1", f"{launcher}: stop lines {stops}")
    step = stops[0][0]
    log = u.read_log(run_dir)
    u.check(u.resumed_steps(log) == [0, step], f"{launcher}: starts in train.log {u.resumed_steps(log)}")
    u.check("(written by 2 rank(s)): 1 rank(s) x 8 images" in log, f"{launcher}: the resume on 1 rank:\n{log}")
    s.steps_once(run_dir, STEPS, f"{launcher}: 2 ranks then 1")

    _, attrs = u.read_checkpoint(u.checkpoint_path(run_dir, STEPS))
    _, ref_attrs = u.read_checkpoint(u.checkpoint_path(reference, STEPS))
    for key in ("step", "iteration", "data_epoch", "data_position"):
        u.check(attrs[key] == ref_attrs[key],
                f"{launcher}: {key}: {attrs[key]} after 2 -> 1, {ref_attrs[key]} uninterrupted")
    got = {m["step"]: m["loss"] for m in u.metrics(run_dir)}
    ref = {m["step"]: m["loss"] for m in u.metrics(reference)}
    worst = max(abs(got[k] - ref[k]) / abs(ref[k]) for k in ref)
    u.check(worst <= LOSS_RTOL, f"{launcher}: the losses differ from the uninterrupted run by up to {worst:.3g}")
    # The tolerance sees a data stream shifted by one step (each loss against the next).
    shifted = max(abs(ref[k + 1] - ref[k]) / abs(ref[k]) for k in range(step + 1, STEPS))
    u.check(shifted > 10 * LOSS_RTOL, f"neighbouring steps' losses differ by only {shifted:.3g}: a vacuous tolerance")
    print(f"ok   {launcher}: stopped at step {step} on 2 ranks, resumed on 1: every loss within {worst:.2g} "
          f"(relative) of the uninterrupted 2-rank run (a stream shifted by one step: {shifted:.2g}); data "
          f"position {attrs['data_position']}, epoch {attrs['data_epoch']} equal; {job.summary()}")


def body(args):
    data = u.make_dataset(args)
    reference = os.path.join(args.workdir, "reference")
    job, run_dir = stop_and_shrink(args, data, "srun", ["--signal=USR1"])
    u.expect_ok(u.train(args, 2, data, reference, CONFIG), "uninterrupted mpirun -np 2")  # while it waits
    check_resumed(job, run_dir, reference, "srun")
    job, run_dir = stop_and_shrink(args, data, "mpirun", ["--batch", "--signal=USR1"])
    check_resumed(job, run_dir, reference, "mpirun")


if __name__ == "__main__":
    s.main(body)
