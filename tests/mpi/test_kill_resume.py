"""kill -9 of a random rank at random points of a 2-rank run with a checkpoint every
other step, then a restart, several times over. After every kill `latest` names a
complete checkpoint, every restart resumes from the last complete checkpoint, and the
final weights, EMA and Adam moments are bitwise those of an uninterrupted run (same
ranks, so the same reduction order).

Then the same through `launch/train.sh --retries`: a rank killed mid-run, and the
script starts the job again by itself and finishes it, bitwise as above."""
import os
import random
import signal
import time

import mpi_util as u

RANKS = 2
STEPS = 40
CONFIG = {"train.batch_size": 8, "train.total_steps": STEPS, "train.checkpoint_every": 2,
          "train.keep_checkpoints": 3, "train.log_every": 1}
KILLS = 4


def check_latest(run_dir, label):
    latest = os.path.join(run_dir, "checkpoints", "latest")
    if not os.path.exists(latest):
        return
    with open(latest) as f:
        name = f.read().strip()
    path = os.path.join(run_dir, "checkpoints", name)
    u.check(os.path.exists(path) and u.is_valid_checkpoint(path), f"{label}: latest names {name}, which is not a "
                                                                    "complete checkpoint")


def body(args):
    seed = int(os.environ.get("DDPM_TEST_SEED", time.time_ns() % 100000))
    print(f"seed {seed} (DDPM_TEST_SEED={seed} repeats this run)")
    rng = random.Random(seed)
    data = u.make_dataset(args)

    reference = os.path.join(args.workdir, "reference")
    u.expect_ok(u.train(args, RANKS, data, reference, CONFIG), "uninterrupted run")

    run_dir = os.path.join(args.workdir, "killed")
    for round_ in range(KILLS):
        expected = u.expected_resume_step(run_dir)
        starts = len(u.resumed_steps(u.read_log(run_dir)))
        job = u.Job(args, RANKS, data, run_dir, CONFIG)
        try:
            pids = job.rank_pids()
            if round_ == 0:  # during the startup
                delay = rng.uniform(0, 0.5)
            else:  # in training, a few steps after the start, at a random point of a step
                target = rng.randint(expected + 1, min(expected + 8, STEPS - 1))
                u.wait_for_step(run_dir, target, job.proc, starts_before=starts)
                delay = rng.uniform(0, 0.25)
            time.sleep(delay)
            u.check(job.proc.poll() is None, f"round {round_}: the run ended (status {job.proc.returncode}) "
                                             "before the kill")
            victim = rng.randrange(RANKS)
            os.kill(pids[victim], signal.SIGKILL)
            status, _, _ = job.wait(timeout=60)
        finally:
            job.kill()
        u.check(status != 0, f"round {round_}: mpirun exited 0 after a rank was killed")
        resumed = u.resumed_steps(u.read_log(run_dir))
        if len(resumed) > starts:
            u.check(resumed[-1] == expected,
                    f"round {round_}: resumed at {resumed[-1]} but the last complete checkpoint was step {expected}")
        check_latest(run_dir, f"after kill {round_ + 1} (rank {victim})")
        print(f"ok   kill {round_ + 1}: rank {victim}, {delay:.1f} s in, of a run that started at step {expected}, "
              f"{u.last_logged_step(run_dir)} logged; "
              f"checkpoints now {u.checkpoint_steps(run_dir)}")

    expected = u.expected_resume_step(run_dir)
    u.expect_ok(u.train(args, RANKS, data, run_dir, CONFIG), "final restart")
    resumed = u.resumed_steps(u.read_log(run_dir))
    u.check(resumed[-1] == expected, f"the final restart resumed at {resumed[-1]}, expected {expected}")
    leftovers = [n for n in os.listdir(os.path.join(run_dir, "checkpoints")) if n.endswith(".tmp")]
    u.check(not leftovers, f"unfinished files left behind: {leftovers}")
    u.assert_bitwise_equal(u.checkpoint_path(run_dir, STEPS), u.checkpoint_path(reference, STEPS),
                           "killed and resumed vs uninterrupted")
    print(f"ok   {KILLS} kills, restarts at {resumed}: final checkpoint bitwise equal to the uninterrupted run")

    # launch/train.sh --retries restarts a failed job itself.
    run_dir = os.path.join(args.workdir, "retries")
    script = os.path.join(u.SOURCE_DIR, "launch", "train.sh")
    env = {"DDPM_TRAIN": args.ddpm_train, "DDPM_MPIRUN_ARGS": "--oversubscribe --allow-run-as-root",
           "DDPM_RETRY_DELAY": "0"}
    job = u.Job(args, RANKS, data, run_dir, CONFIG, env=env, launcher=[script, "-n", str(RANKS), "--retries", "2", "--"])
    try:
        pids = job.rank_pids()
        u.wait_for_step(run_dir, rng.randint(5, 15), job.proc)
        victim = rng.randrange(RANKS)
        os.kill(pids[victim], signal.SIGKILL)
        status, _, err = job.wait(timeout=240)
    finally:
        job.kill()
    u.check(status == 0, f"train.sh --retries: status {status}:\n{err}")
    u.check("(retry 1 of 2)" in err, f"train.sh did not say it restarts:\n{err}")
    resumed = u.resumed_steps(u.read_log(run_dir))
    u.check(len(resumed) == 2, f"train.sh --retries: starts at {resumed}, expected two")
    u.assert_bitwise_equal(u.checkpoint_path(run_dir, STEPS), u.checkpoint_path(reference, STEPS),
                           "train.sh --retries vs uninterrupted")
    print(f"ok   launch/train.sh --retries 2: rank {victim} killed, the script started again at step {resumed[-1]} "
          "and finished bitwise equal to the uninterrupted run")


if __name__ == "__main__":
    u.main_wrapper(body)
