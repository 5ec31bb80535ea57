"""sbatch --ntasks=2 launch/slurm/train.sbatch on the tiny config runs to the end on 2
ranks, once with srun (--mpi=pmix, the only PMI Debian's Open MPI speaks) and once with
DDPM_LAUNCHER=mpirun inside the allocation; each final checkpoint is bitwise that of a
plain `mpirun -np 2` run outside Slurm (same ranks, same reduction order)."""
import os

import slurm_util as s
from slurm_util import u

RANKS = 2
STEPS = 30
CONFIG = {"train.batch_size": 8, "train.total_steps": STEPS, "train.checkpoint_every": 10, "train.log_every": 1}


def body(args):
    s.require_cluster()
    r = u.run(["srun", "--mpi=list"])
    print("     srun --mpi=list: " + " ".join(r.stdout.split() + r.stderr.split()))
    data = u.make_dataset(args)
    jobs = {}
    for launcher in ("srun", "mpirun"):
        run_dir = os.path.join(args.workdir, launcher)
        jobs[launcher] = (s.Job(args, launcher, RANKS, data, run_dir, CONFIG, launcher=launcher), run_dir)
    # Both jobs need every CPU of the node: Slurm runs them one after the other, while
    # the reference runs here outside Slurm.
    reference = os.path.join(args.workdir, "reference")
    u.expect_ok(u.train(args, RANKS, data, reference, CONFIG), "mpirun -np 2 outside Slurm")
    for launcher, (job, run_dir) in jobs.items():
        info = job.wait_done(timeout=120)
        u.check(info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0",
                f"{launcher}: {job.summary()}\n{job.output()}")
        out = job.output()
        shown = {"srun": f"srun --ntasks={RANKS} ", "mpirun": f"mpirun -np {RANKS} "}[launcher]
        u.check(f"train.sh: {shown}" in out, f"{launcher}: train.sh did not run `{shown}...`:\n{out}")
        u.check(f"training: {RANKS} rank(s) x 4 images" in u.read_log(run_dir),
                f"{launcher}: the job did not train on {RANKS} ranks:\n{u.read_log(run_dir)}")
        u.check(job.starts() == [(1, 0, RANKS)], f"{launcher}: starts {job.starts()}")
        s.steps_once(run_dir, STEPS, launcher)
        u.assert_bitwise_equal(u.checkpoint_path(run_dir, STEPS), u.checkpoint_path(reference, STEPS),
                               f"sbatch with {launcher} vs mpirun -np 2")
        print(f"ok   {launcher}: {job.summary()}; final checkpoint bitwise equal to mpirun -np 2")


if __name__ == "__main__":
    s.main(body)
