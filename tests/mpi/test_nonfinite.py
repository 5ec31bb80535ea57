"""NaN/Inf handling and the replica check, with faults injected on one rank
(DDPM_FAULT_INJECT, docs/operations.md):

  - a NaN in rank 1's gradient and a NaN loss on rank 0 are each skipped by every rank:
    the run ends normally, the metrics count both skips, the checkpoint records them, and
    the replica check (every log interval and at the end) finds the parameters identical;
  - the replica check is not vacuous: a nudged parameter on rank 1 aborts the job with
    a message naming rank 1;
  - M NaN steps in a row abort the job with a clear message, after a checkpoint;
  - a malformed fault spec is bad input.
"""
import os

import mpi_util as u

RANKS = 2
CONFIG = {"train.batch_size": 8, "train.total_steps": 10, "train.log_every": 2, "train.checkpoint_every": 100}


def run_with_faults(args, data, name, faults, config=CONFIG):
    run_dir = os.path.join(args.workdir, name)
    env = {"DDPM_FAULT_INJECT": faults}
    return run_dir, u.train(args, RANKS, data, run_dir, config, env=env)


def body(args):
    data = u.make_dataset(args)

    run_dir, r = run_with_faults(args, data, "skips", "nan_grad:rank=1:iteration=3,nan_loss:rank=0:iteration=6")
    u.expect_ok(r, "two NaN steps")
    records = u.metrics(run_dir)
    skipped = sum(m["skipped"] for m in records)
    u.check(skipped == 2, f"the metrics count {skipped} skipped steps, expected 2: {records}")
    _, attrs = u.read_checkpoint(u.checkpoint_path(run_dir, 10))
    u.check((attrs["step"], attrs["iteration"], attrs["nonfinite_skips"]) == (10, 12, 2),
            f"checkpoint: step {attrs['step']}, iteration {attrs['iteration']}, skips {attrs['nonfinite_skips']}")
    log = u.read_log(run_dir)
    u.check("injecting faults (tests only)" in log, "no warning that faults are injected")
    print("ok   NaN gradient on rank 1 (iteration 3) and NaN loss on rank 0 (iteration 6): both skipped on all "
          "ranks, 10 steps in 12 iterations, replicas identical")

    run_dir, r = run_with_faults(args, data, "diverged", "perturb_param:rank=1:iteration=2")
    lines = u.error_lines(r.stderr)
    u.check(r.returncode == u.EXIT_INTERNAL and len(lines) == 1, f"diverged: status {r.returncode}:\n{r.stderr}")
    u.check("parameters differ across ranks after step 4" in lines[0] and "rank(s) 1 differ" in lines[0],
            f"diverged: {lines[0]}")
    print(f"ok   diverged replica: {lines[0]}")

    limited = dict(CONFIG, **{"train.max_nonfinite_skips": 3})
    run_dir, r = run_with_faults(args, data, "too_many", "nan_grad:rank=0:iteration=4-", limited)
    lines = u.error_lines(r.stderr)
    u.check(r.returncode == u.EXIT_INTERNAL and len(lines) == 1, f"too many: status {r.returncode}:\n{r.stderr}")
    u.check("3 steps in a row had a NaN/Inf gradient" in lines[0], f"too many: {lines[0]}")
    _, attrs = u.read_checkpoint(u.checkpoint_path(run_dir, 4))
    u.check((attrs["iteration"], attrs["nonfinite_skips"]) == (7, 3),
            f"too many: checkpoint iteration {attrs['iteration']}, skips {attrs['nonfinite_skips']}")
    print(f"ok   NaN steps in a row: {lines[0]}")

    for spec in ("nan_grad:rank=1", "nan_grads:rank=1:iteration=3", "nan_grad:rank=1:iteration=5-2"):
        _, r = run_with_faults(args, data, "bad_spec", spec)
        line = u.expect_bad_input(r, "DDPM_FAULT_INJECT", f"spec {spec!r}")
    print(f"ok   malformed fault specs: {line}")


if __name__ == "__main__":
    u.main_wrapper(body)
