#!/usr/bin/env bash
# Launches ddpm_train with one rank per GPU (or per CPU socket), on one machine or a
# cluster, and exits with its status (docs/operations.md):
#   0 done, 1 failure, 2 bad input, 75 stopped by a signal after a checkpoint (requeue).
#
#   launch/train.sh [-n RANKS] [--hostfile FILE] [--retries N] [--] DDPM_TRAIN_ARGS...
#
#   launch/train.sh -n 8 -- --config configs/cifar10.yaml --run-dir runs/cifar10
#   launch/train.sh -n 64 --hostfile hosts -- --config configs/celebahq256.yaml --run-dir runs/celebahq
#
# Inside a Slurm allocation it uses srun with the allocation's tasks (RANKS defaults to
# $SLURM_NTASKS); elsewhere mpirun. SIGTERM, SIGINT and SIGUSR1 sent to this script reach
# every rank as SIGUSR1: the ranks agree to stop at the next step, rank 0 checkpoints
# and the script exits 75. (mpirun itself would turn SIGTERM into a kill after 1 s.)
#
# --retries N (or DDPM_RETRIES): when the job fails (a rank killed or crashed, a
# watchdog abort; any status but 0, 2 and 75) and no stop was asked for, start it again
# up to N times, DDPM_RETRY_DELAY seconds (default 10) later; each start resumes from
# the newest complete checkpoint, so a crash costs at most the steps since it.
#
# Environment:
#   DDPM_TRAIN        the ddpm_train binary (default: build/src/apps/ddpm_train, else PATH)
#   DDPM_LAUNCHER     auto (default: srun inside Slurm, else mpirun) | srun | mpirun
#   DDPM_MPIRUN_ARGS  more mpirun arguments, e.g. "--oversubscribe --bind-to socket"
#   DDPM_SRUN_ARGS    more srun arguments, e.g. "--mpi=pmix"
#   OMP_NUM_THREADS   CPU threads per rank (CPU backend); passed to every rank
set -euo pipefail

usage() {  # usage [STATUS]: 0 for --help (on stdout), 2 for a bad command line
  if [ "${1:-2}" = 0 ]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  else
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  fi
  exit "${1:-2}"
}

ranks=""
retries="${DDPM_RETRIES:-0}"
mpirun_hosts=()
while [ $# -gt 0 ]; do
  case "$1" in
    -n|--ranks) [ $# -ge 2 ] || usage; ranks="$2"; shift 2 ;;
    --hostfile) [ $# -ge 2 ] || usage; mpirun_hosts=(--hostfile "$2"); shift 2 ;;
    --retries) [ $# -ge 2 ] || usage; retries="$2"; shift 2 ;;
    -h|--help) usage 0 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || usage
case "$retries" in
  ''|*[!0-9]*) echo "train.sh: error: --retries must be a count, not '$retries'" >&2; exit 2 ;;
esac
retry_delay="${DDPM_RETRY_DELAY:-10}"

here="$(cd "$(dirname "$0")/.." && pwd)"
train="${DDPM_TRAIN:-}"
if [ -z "$train" ]; then
  if [ -x "$here/build/src/apps/ddpm_train" ]; then
    train="$here/build/src/apps/ddpm_train"
  else
    train="$(command -v ddpm_train || true)"
  fi
fi
if [ -z "$train" ] || [ ! -x "$train" ]; then
  echo "train.sh: error: no ddpm_train binary (build it, or set DDPM_TRAIN)" >&2
  exit 2
fi

launcher="${DDPM_LAUNCHER:-auto}"
if [ "$launcher" = auto ]; then
  if [ -n "${SLURM_JOB_ID:-}" ] && command -v srun >/dev/null; then launcher=srun; else launcher=mpirun; fi
fi
case "$launcher" in
  srun)
    ranks="${ranks:-${SLURM_NTASKS:-1}}"
    # --kill-on-bad-exit=0: a rank that exits 75 must not get the others killed while
    # they finish; a rank that fails aborts the job itself (MPI_Abort, or the watchdog).
    # shellcheck disable=SC2206
    cmd=(srun --ntasks="$ranks" --kill-on-bad-exit=0 --export=ALL ${DDPM_SRUN_ARGS:-} "$train" "$@")
    ;;
  mpirun)
    ranks="${ranks:-1}"
    exports=()
    for name in OMP_NUM_THREADS OMP_WAIT_POLICY DDPM_FAULT_INJECT; do
      [ -n "${!name:-}" ] && exports+=(-x "$name")
    done
    # shellcheck disable=SC2206
    cmd=(mpirun -np "$ranks" "${mpirun_hosts[@]}" "${exports[@]}" ${DDPM_MPIRUN_ARGS:-} "$train" "$@")
    ;;
  *)
    echo "train.sh: error: DDPM_LAUNCHER must be auto, srun or mpirun, not '$launcher'" >&2
    exit 2
    ;;
esac

# The launcher runs in the background so that this shell can pass stop signals on.
child=""
stop_asked=0
# shellcheck disable=SC2317  # called by the trap
forward_stop() {
  stop_asked=1
  if [ -n "$child" ]; then kill -USR1 "$child" 2>/dev/null || true; fi
}
trap forward_stop TERM INT USR1
attempt=0
while true; do
  echo "train.sh: ${cmd[*]}" >&2
  "${cmd[@]}" &
  child=$!
  while true; do
    status=0
    wait "$child" || status=$?
    # A trapped signal interrupts wait (status > 128) while the launcher runs on.
    kill -0 "$child" 2>/dev/null || break
  done
  child=""
  case "$status" in 0|2|75) break ;; esac
  if [ "$stop_asked" = 1 ] || [ "$attempt" -ge "$retries" ]; then break; fi
  attempt=$((attempt + 1))
  echo "train.sh: ddpm_train failed with status $status; starting again in ${retry_delay} s from the newest" \
       "checkpoint (retry $attempt of $retries)" >&2
  sleep "$retry_delay" &
  wait $! || true
  if [ "$stop_asked" = 1 ]; then break; fi
done
exit "$status"
