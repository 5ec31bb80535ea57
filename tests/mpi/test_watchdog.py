"""No hang when one rank cannot go on:

  - a rank stopped with SIGSTOP mid-run: another rank's watchdog sees no progress for
    train.step_timeout_s and aborts the whole job with one line naming the rank, the
    phase and the iteration, instead of the job hanging until the allocation runs out;
    from the heartbeat files, the line also names the stopped rank;
  - a rank that meets a corrupt image mid-run ends the whole job at once (exit 2) with
    one line naming itself, the shard and the image, while the others wait for it in a
    collective.
"""
import glob
import os
import re
import signal
import time

import h5py

import mpi_util as u

RANKS = 3
TIMEOUT_S = 6
# Aborting (MPI_Abort, mpirun tearing down) and a busy machine get some slack.
SLACK_S = 20
CONFIG = {"train.batch_size": 6, "train.total_steps": 100000, "train.log_every": 1,
          "train.checkpoint_every": 100000, "train.step_timeout_s": TIMEOUT_S}
LINE = re.compile(r"ddpm_train: error: watchdog: rank (\d+) made no progress for ([\d.]+) s in phase '([a-z -]+)' "
                  r"of iteration (\d+) \(train.step_timeout_s = [\d.]+\): it is waiting for the other ranks")


def stopped_rank(args, data):
    run_dir = os.path.join(args.workdir, "stopped")
    job = u.Job(args, RANKS, data, run_dir, CONFIG)
    try:
        pids = job.rank_pids()
        u.wait_for_step(run_dir, 3, job.proc)
        stopped = time.time()
        os.kill(pids[1], signal.SIGSTOP)
        status, _, err = job.wait(timeout=TIMEOUT_S + SLACK_S)
        took = time.time() - stopped
    finally:
        job.kill()
    u.check(status != 0, f"the job exited {status}")
    lines = u.error_lines(err)
    # The first error line is the watchdog's (others may follow while the job is torn down).
    m = LINE.search(lines[0]) if lines else None
    u.check(m is not None, f"the first error line is not the watchdog's:\n{err}")
    u.check(int(m.group(1)) in (0, 2), f"the line names rank {m.group(1)}, not a running one")
    u.check(float(m.group(2)) >= TIMEOUT_S, f"fired after {m.group(2)} s, before the timeout")
    u.check(int(m.group(4)) >= 3, f"iteration {m.group(4)}")
    u.check(re.search(r"; rank 1 stopped reporting \(last in phase '[a-z -]+' of iteration \d+\)", lines[0])
            is not None, f"the line does not name the stopped rank 1:\n{lines[0]}")
    u.check(TIMEOUT_S <= took <= TIMEOUT_S + SLACK_S, f"the job ended {took:.1f} s after the stop")
    print(f"ok   rank 1 stopped: the job ended after {took:.1f} s (timeout {TIMEOUT_S} s): {lines[0]}")


def corrupt_image(args, data):
    shard = sorted(glob.glob(os.path.join(data, "shard-*.h5")))[-1]
    with h5py.File(shard, "r") as f:
        chunk = f["images"].id.get_chunk_info_by_coord((3, 0, 0, 0))
    with open(shard, "r+b") as f:
        f.seek(chunk.byte_offset + 100)
        byte = f.read(1)[0]
        f.seek(chunk.byte_offset + 100)
        f.write(bytes([byte ^ 0xFF]))
    started = time.time()
    r = u.train(args, RANKS, data, os.path.join(args.workdir, "corrupt"),
                dict(CONFIG, **{"train.total_steps": 30}), timeout=TIMEOUT_S + SLACK_S + 30)
    took = time.time() - started
    lines = u.error_lines(r.stderr)
    u.check(r.returncode == u.EXIT_BAD_INPUT, f"corrupt image: status {r.returncode}:\n{r.stderr}")
    u.check(len(lines) == 1 and re.match(r"ddpm_train: error: rank \d: ", lines[0]) is not None and
            os.path.basename(shard) in lines[0], f"corrupt image: error lines {lines}")
    u.check(took < TIMEOUT_S + SLACK_S, f"corrupt image: the job took {took:.1f} s")
    print(f"ok   corrupt image on one rank: the job ended after {took:.1f} s: {lines[0]}")


def body(args):
    data = u.make_dataset(args)
    stopped_rank(args, data)
    corrupt_image(args, data)


if __name__ == "__main__":
    u.main_wrapper(body)
