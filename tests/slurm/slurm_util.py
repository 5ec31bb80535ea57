"""Shared pieces of the Slurm tests: launch/slurm/train.sbatch submitted with sbatch to
the throw-away cluster that tests/slurm/cluster.sh runs them in (SLURM_CONF points at
it), the job's state from scontrol, and what its output file says about each start.
Data, ddpm_train's arguments and checkpoints come from tests/mpi/mpi_util.py."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "mpi"))
import mpi_util as u  # noqa: E402

SBATCH_SCRIPT = os.path.join(u.SOURCE_DIR, "launch", "slurm", "train.sbatch")
# train.sbatch asks for 8 GPUs and 8 CPUs per task: this cluster has neither.
CPU_ONLY = ["--cpus-per-task=1", "--gpus-per-node=0"]
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY",
                "BOOT_FAIL", "DEADLINE"}
# Debian's Open MPI speaks PMIx only (srun --mpi=pmi2 and the default "none" fail in
# MPI_Init): the site setting DDPM_SRUN_ARGS exists for.
SRUN_ARGS = "--mpi=pmix"
KILL_WAIT_S = int(os.environ.get("DDPM_SLURM_KILL_WAIT", "15"))


def require_cluster():
    u.check("SLURM_CONF" in os.environ, "run this under tests/slurm/cluster.sh (SLURM_CONF is not set)")


class Job:
    """One sbatch of train.sbatch; its output file is WORKDIR/<name>-<jobid>.out."""

    def __init__(self, args, name, ranks, data, run_dir, overrides, sbatch_opts=(), env=None, launcher="srun"):
        require_cluster()
        self.name = name
        e = u.child_env({"DDPM_TRAIN": os.path.realpath(args.ddpm_train), "DDPM_LAUNCHER": launcher,
                         "DDPM_SRUN_ARGS": SRUN_ARGS, "DDPM_RETRY_DELAY": "0",
                         # mpirun refuses root without these; this cluster runs jobs as root.
                         "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"})
        e.update(env or {})
        cmd = (["sbatch", "--parsable", f"--job-name={name}", f"--ntasks={ranks}", f"--ntasks-per-node={ranks}",
                f"--output={os.path.join(args.workdir, name)}-%j.out"] + CPU_ONLY + list(sbatch_opts) +
               [SBATCH_SCRIPT] + u.train_args(args, data, run_dir, overrides)[1:])
        # From the repository root: train.sbatch runs launch/train.sh relative to it.
        r = u.run(cmd, env=e, cwd=u.SOURCE_DIR, timeout=60)
        u.check(r.returncode == 0, f"sbatch failed ({r.returncode}): {r.stderr.strip()}\n{' '.join(cmd)}")
        self.id = r.stdout.strip().split(";")[0]
        self.out_path = os.path.join(args.workdir, f"{name}-{self.id}.out")
        self.submitted = time.time()
        print(f"     submitted {name}: job {self.id} ({ranks} rank(s), {launcher}{' ' if sbatch_opts else ''}"
              f"{' '.join(sbatch_opts)})", flush=True)

    def info(self):
        """scontrol show job as {key: value} ({} once Slurm has forgotten the job)."""
        r = u.run(["scontrol", "show", "job", "-o", self.id], timeout=30)
        if r.returncode != 0:
            return {}
        return dict(kv.split("=", 1) for kv in r.stdout.split() if "=" in kv)

    def state(self):
        return self.info().get("JobState", "")

    def wait_state(self, states, timeout, what=None):
        """Waits until the job is in one of `states` and no longer completing; returns info."""
        deadline = time.time() + timeout
        while True:
            info = self.info()
            completing = "COMPLETING" in info.get("Reason", "") or info.get("JobState") == "COMPLETING"
            if info.get("JobState") in states and not completing:
                return info
            if time.time() > deadline:
                raise u.Failure(f"job {self.id} ({self.name}): not {what or '/'.join(sorted(states))} within "
                                f"{timeout} s (state {info.get('JobState')}, reason {info.get('Reason')}); "
                                f"output:\n{self.output()}")
            time.sleep(0.2)

    def wait_done(self, timeout):
        return self.wait_state(FINAL_STATES, timeout, "finished")

    def output(self):
        try:
            with open(self.out_path) as f:
                return f.read()
        except OSError:
            return ""

    def starts(self):
        """[(start number, SLURM_RESTART_COUNT, ranks)] as train.sbatch printed them."""
        return [(int(a), int(b), int(c)) for a, b, c in
                re.findall(r"^ddpm: job \d+ \(start (\d+), SLURM_RESTART_COUNT=(\d+)\) on .*? (\d+) rank\(s\)",
                           self.output(), re.M)]

    def rank_pids(self):
        """pids of this job's ddpm_train processes, found through /proc."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if not os.readlink(f"/proc/{entry}/exe").endswith("/ddpm_train"):
                    continue
                with open(f"/proc/{entry}/environ", "rb") as f:
                    env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
                if env.get(b"SLURM_JOB_ID", b"").decode() == self.id:
                    pids.append(int(entry))
            except (OSError, ValueError):
                continue
        return sorted(pids)

    def summary(self):
        info = self.info()
        return (f"job {self.id} {info.get('JobState')} exit {info.get('ExitCode')} restarts {info.get('Restarts')}, "
                f"starts (start, SLURM_RESTART_COUNT, ranks) {self.starts()}")


def wait_logged_step(job, run_dir, step, starts_before=0, timeout=90):
    """Waits until a start of the job after the first `starts_before` has logged `step`."""
    deadline = time.time() + timeout
    while u.last_logged_step(run_dir, starts_before) < step:
        state = job.state()
        if state in FINAL_STATES:
            raise u.Failure(f"job {job.id} ended ({state}) before step {step}:\n{job.output()}")
        if time.time() > deadline:
            raise u.Failure(f"job {job.id}: step {step} not reached within {timeout} s ({state}):\n{job.output()}")
        time.sleep(0.1)


def steps_once(run_dir, total, label):
    """metrics.jsonl holds each step 1..total exactly once, in order."""
    steps = [m["step"] for m in u.metrics(run_dir)]
    u.check(steps == list(range(1, total + 1)),
            f"{label}: metrics.jsonl steps are not 1..{total} once each: "
            f"{len(steps)} lines, repeated {sorted({s for s in steps if steps.count(s) > 1})[:10]}, "
            f"missing {sorted(set(range(1, total + 1)) - set(steps))[:10]}")


def stop_lines(run_dir):
    """[(step, signal name)] of the 'stopping at step S on SIG' lines of train.log."""
    return [(int(a), b) for a, b in re.findall(r"stopping at step (\d+) on (SIG\w+)", u.read_log(run_dir))]


def main(body):
    u.main_wrapper(body)
