"""A stop signal on one rank stops every rank: the ranks agree on it at the next step,
rank 0 commits a checkpoint of that step, and every rank exits with 75 (requeue) within
30 s. Then a restart resumes from that checkpoint.

  - SIGUSR1 to rank 1 (Slurm's --signal warning), under mpirun: each rank's own status;
  - SIGTERM to rank 0 (scancel, preemption), under mpirun;
  - SIGTERM to launch/train.sh, which passes it on as SIGUSR1 and exits 75 itself; the
    same script then resumes the run to its end.
"""
import os
import signal
import subprocess
import time

import mpi_util as u

RANKS = 2
LONG = {"train.batch_size": 8, "train.total_steps": 100000, "train.checkpoint_every": 100000,
        "train.log_every": 1}
DEADLINE_S = 30
# Each rank's exit status, as the shell under mpirun sees it. The shell ignores SIGTERM
# (which mpirun sends the others once one rank has exited 75); ddpm_train installs its
# own handler, so it is unaffected.
STATUS_WRAPPER = ["sh", "-c", 'trap "" TERM; "$0" "$@"; s=$?; echo $s > "$DDPM_STATUS_DIR/rank.$OMPI_COMM_WORLD_RANK";'
                              ' exit $s']


def check_stopped(run_dir, label, signal_name):
    """The stop line, and a committed checkpoint of that step that `latest` names."""
    log = u.read_log(run_dir)
    stops = [line for line in log.splitlines() if "stopping at step" in line]
    u.check(len(stops) == 1 and f"on {signal_name}" in stops[0] and "exit 75" in stops[0],
            f"{label}: stop lines {stops}")
    step = int(stops[0].split("stopping at step ")[1].split()[0])
    u.check(step >= 1, f"{label}: stopped at step {step}")
    with open(os.path.join(run_dir, "checkpoints", "latest")) as f:
        u.check(f.read().strip() == f"ckpt-{step:08d}.h5", f"{label}: latest does not name step {step}")
    _, attrs = u.read_checkpoint(u.checkpoint_path(run_dir, step))
    u.check(attrs["step"] == step, f"{label}: the checkpoint says step {attrs['step']}")
    return step, stops[0].split("] ", 1)[1]


def stop_one_rank(args, data, name, victim, sig):
    run_dir = os.path.join(args.workdir, name)
    status_dir = os.path.join(args.workdir, name + "-status")
    os.makedirs(status_dir)
    env = {"DDPM_STATUS_DIR": status_dir}
    job = u.Job(args, RANKS, data, run_dir, LONG, env=env, wrapper=STATUS_WRAPPER)
    try:
        pids = job.rank_pids()
        u.wait_for_step(run_dir, 2, job.proc)
        sent = time.time()
        os.kill(pids[victim], sig)
        status, _, err = job.wait(timeout=DEADLINE_S + 30)
        took = time.time() - sent
    finally:
        job.kill()
    label = f"{signal.Signals(sig).name} to rank {victim}"
    u.check(took <= DEADLINE_S, f"{label}: the job took {took:.1f} s to stop")
    u.check(status == u.EXIT_REQUEUE, f"{label}: mpirun exited {status}:\n{err}")
    for rank in range(RANKS):
        path = os.path.join(status_dir, f"rank.{rank}")
        u.check(os.path.exists(path), f"{label}: rank {rank} left no status (killed?)")
        with open(path) as f:
            got = int(f.read())
        u.check(got == u.EXIT_REQUEUE, f"{label}: rank {rank} exited {got}")
    step, line = check_stopped(run_dir, label, signal.Signals(sig).name)
    print(f"ok   {label}: every rank exited 75 after {took:.1f} s; {line}")
    return run_dir, step


def body(args):
    data = u.make_dataset(args)
    stop_one_rank(args, data, "usr1_rank1", 1, signal.SIGUSR1)
    run_dir, step = stop_one_rank(args, data, "term_rank0", 0, signal.SIGTERM)
    r = u.train(args, RANKS, data, run_dir, dict(LONG, **{"train.total_steps": step + 2}))
    u.expect_ok(r, "restart")
    u.check(u.resumed_steps(u.read_log(run_dir))[-1] == step, f"the restart did not resume at step {step}")
    print(f"ok   the restart resumed at step {step} and finished")

    # Through the launch script: SIGTERM to the script itself.
    script = os.path.join(u.SOURCE_DIR, "launch", "train.sh")
    run_dir = os.path.join(args.workdir, "train_sh")
    env = u.child_env({"DDPM_TRAIN": args.ddpm_train, "DDPM_MPIRUN_ARGS": "--oversubscribe --allow-run-as-root"})
    command = [script, "-n", str(RANKS), "--"] + u.train_args(args, data, run_dir, LONG)[1:]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                              start_new_session=True)
    try:
        u.wait_for_step(run_dir, 2, proc)
        sent = time.time()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=DEADLINE_S + 30)
        took = time.time() - sent
    finally:
        for pid in u.session_pids(proc.pid):
            os.kill(pid, signal.SIGKILL)
    u.check(proc.returncode == u.EXIT_REQUEUE and took <= DEADLINE_S,
            f"train.sh: status {proc.returncode} after {took:.1f} s:\n{err}")
    step, line = check_stopped(run_dir, "train.sh", "SIGUSR1")
    print(f"ok   SIGTERM to launch/train.sh: exit 75 after {took:.1f} s; {line}")
    command = [script, "-n", str(RANKS), "--"] + u.train_args(args, data, run_dir,
                                                               dict(LONG, **{"train.total_steps": step + 2}))[1:]
    r = u.run(command, env=env)
    u.check(r.returncode == 0, f"train.sh resume: status {r.returncode}:\n{r.stderr}")
    u.check(u.resumed_steps(u.read_log(run_dir))[-1] == step, "train.sh did not resume at the stop step")
    print(f"ok   launch/train.sh resumed at step {step} and exited 0")


if __name__ == "__main__":
    u.main_wrapper(body)
