"""The same config and global batch on 1, 2 and 4 ranks gives the same training, and a
checkpoint written by 4 ranks resumes on 2 with the same data stream and noise.

Not bitwise: with W ranks each rank sums the gradients of its B/W examples inside the
model's backward, and the all-reduce then sums the W partial sums, so the order of the
float32 additions changes with W. Tolerances, after k = 6 Adam steps:

  - per-step loss (logged): relative 1e-6. The forward pass of an example does not depend
    on W (t, noise and dropout are keyed by the global example index); only the order of
    the sum over examples changes, in double.
  - Adam moments m and v, over the whole buffer: ||x_W - x_1|| <= 1e-5 ||x_1||. They are
    proportional to the gradient (and its square), whose relative round-off is ~1e-7
    (measured: 1e-7), so a wrong averaging factor (1/W too many or too few) or a lost
    bucket shows here even though Adam would hide it in the weights.
  - weights and EMA: ||x_W - x_1|| <= 1e-4 ||x_1 - x_0||, relative to how far training
    moved them. Adam divides each gradient element by its own running magnitude, so a
    round-off difference turns into an update difference of order lr x (relative error)
    for well-determined elements, but for elements whose exact gradient is zero (a bias
    right before a GroupNorm that has one channel per group) the gradient is pure
    round-off, Adam scales it up to steps of up to lr and the two runs walk apart by up to
    ~lr per step. Those tiny tensors dominate the measured difference (5e-6); 1e-4 leaves
    a 20x margin, while the weights of one step earlier are ~0.3 away (checked below, so
    the test can fail).
"""
import os

import numpy as np

import mpi_util as u

STEPS = 6
GLOBAL_BATCH = 8
# warmup 1: the first update has learning rate 0, so the step-1 checkpoint holds the
# initial weights (x_0 above).
CONFIG = {"train.batch_size": GLOBAL_BATCH, "train.total_steps": STEPS, "train.warmup_steps": 1,
          "train.log_every": 1, "train.checkpoint_every": 1, "train.keep_checkpoints": 100}
LOSS_RTOL, MOMENT_RTOL, WEIGHT_RTOL = 1e-6, 1e-5, 1e-4


def flat(tensors, group):
    return np.concatenate([tensors[group][n].ravel().astype(np.float64) for n in sorted(tensors[group])])


def differences(got, ref, initial):
    """{group: relative difference} with the normalisations described above."""
    out = {}
    for group in u.GROUPS:
        a, b = flat(got, group), flat(ref, group)
        scale = b - flat(initial, "params") if group in ("params", "ema") else b
        out[group] = float(np.linalg.norm(a - b) / np.linalg.norm(scale))
    return out


def within(diffs):
    return all(d <= (WEIGHT_RTOL if g in ("params", "ema") else MOMENT_RTOL) for g, d in diffs.items())


def losses(run_dir):
    return {m["step"]: m["loss"] for m in u.metrics(run_dir)}


def body(args):
    data = u.make_dataset(args)
    runs = {}
    for ranks in (1, 2, 4):
        run_dir = os.path.join(args.workdir, f"ranks{ranks}")
        u.expect_ok(u.train(args, ranks, data, run_dir, CONFIG), f"{ranks} rank(s)")
        runs[ranks] = run_dir
    # Written by 4 ranks at step 3, resumed on 2.
    moved = os.path.join(args.workdir, "ranks4to2")
    u.expect_ok(u.train(args, 4, data, moved, dict(CONFIG, **{"train.total_steps": 3})), "4 ranks to step 3")
    r = u.train(args, 2, data, moved, CONFIG)
    u.expect_ok(r, "resumed on 2 ranks")
    u.check(u.resumed_steps(u.read_log(moved)) == [0, 3], f"the 2-rank run did not resume at step 3:\n{r.stderr}")
    runs["4->2"] = moved

    ref, ref_attrs = u.read_checkpoint(u.checkpoint_path(runs[1], STEPS))
    initial, _ = u.read_checkpoint(u.checkpoint_path(runs[1], 1))
    ref_losses = losses(runs[1])
    u.check(sorted(ref_losses) == list(range(1, STEPS + 1)), f"1 rank logged steps {sorted(ref_losses)}")
    for label, run_dir in runs.items():
        if label == 1:
            continue
        got, attrs = u.read_checkpoint(u.checkpoint_path(run_dir, STEPS))
        for key in ("step", "iteration", "data_epoch", "data_position"):
            u.check(attrs[key] == ref_attrs[key], f"{label} ranks: {key} {attrs[key]}, 1 rank {ref_attrs[key]}")
        for step, loss in losses(run_dir).items():
            u.check(abs(loss - ref_losses[step]) <= LOSS_RTOL * abs(ref_losses[step]),
                    f"{label} ranks: loss at step {step} is {loss}, 1 rank {ref_losses[step]}")
        diffs = differences(got, ref, initial)
        print(f"ok   {label} ranks vs 1: " + ", ".join(f"{g} {d:.2g}" for g, d in diffs.items()))
        u.check(within(diffs), f"{label} ranks differ from 1 rank beyond the tolerance: {diffs}")

    # The tolerance is tight enough to see one step of training.
    earlier, _ = u.read_checkpoint(u.checkpoint_path(runs[1], STEPS - 1))
    diffs = differences(earlier, ref, initial)
    u.check(not within(diffs), f"step {STEPS - 1} passes for step {STEPS}: the tolerance is vacuous ({diffs})")
    print("ok   one step earlier is far outside: " + ", ".join(f"{g} {d:.2g}" for g, d in diffs.items()))

    # A global batch the ranks cannot split is bad input: one line, exit 2.
    r = u.train(args, 3, data, os.path.join(args.workdir, "ranks3"), CONFIG)
    line = u.expect_bad_input(r, "not divisible by the 3 ranks", f"3 ranks with batch {GLOBAL_BATCH}")
    print(f"ok   3 ranks: {line}")


if __name__ == "__main__":
    u.main_wrapper(body)
