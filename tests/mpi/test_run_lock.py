"""The run directory's lock: while a job trains in RUN_DIR, a second job on the same
directory exits 2 at once with one line naming the holder (host, pid, start time) and
writes nothing there; after the first job is killed with SIGKILL (its lock file stays
behind), a restart is not blocked and resumes.
"""
import os
import time

import mpi_util as u

LONG = {"train.batch_size": 4, "train.total_steps": 100000, "train.checkpoint_every": 3, "train.log_every": 1}
# A refused job would otherwise train for hours; under load, mpirun and MPI_Init alone
# take seconds (2.5-21 s measured on 2 busy cores).
REFUSE_WITHIN_S = 45


def body(args):
    data = u.make_dataset(args)
    run_dir = os.path.join(args.workdir, "run")
    first = u.Job(args, 1, data, run_dir, LONG)
    try:
        holder = first.rank_pids()[0]
        u.wait_for_step(run_dir, 4, first.proc)
        metrics_before = len(u.metrics(run_dir))
        started = time.time()
        r = u.train(args, 1, data, run_dir, LONG, timeout=REFUSE_WITHIN_S + 40)
        took = time.time() - started
        u.expect_bad_input(r, "another job is using this run directory", "second job")
        line = u.error_lines(r.stderr)[0]
        u.check(f"pid {holder}" in line and "host " in line and "started " in line,
                f"the refusal does not name the holder (pid {holder}): {line}")
        u.check(took <= REFUSE_WITHIN_S, f"the second job took {took:.1f} s to be refused")
        u.check(first.proc.poll() is None, "the first job stopped when the second was refused")
        steps = [m["step"] for m in u.metrics(run_dir)]
        u.check(len(steps) >= metrics_before and len(steps) == len(set(steps)),
                f"metrics.jsonl has repeated steps after the refusal: {steps}")
        print(f"ok   a second job was refused in {took:.1f} s: {line}")
    finally:
        first.kill()
    first.proc.wait()
    u.check(os.path.exists(os.path.join(run_dir, "lock")), "the lock file should outlive a killed job")

    resume_at = u.expected_resume_step(run_dir)
    r = u.train(args, 1, data, run_dir, dict(LONG, **{"train.total_steps": resume_at + 2}))
    u.expect_ok(r, "restart after SIGKILL")
    u.check(u.resumed_steps(u.read_log(run_dir))[-1] == resume_at,
            f"the restart did not resume at step {resume_at}")
    print(f"ok   the stale lock of a killed job did not block the restart (resumed at step {resume_at})")


if __name__ == "__main__":
    u.main_wrapper(body)
