#!/usr/bin/env bash
# A throw-away single-node Slurm cluster on this machine, for the tests under
# tests/slurm (docs/operations.md, "Tested against a real Slurm"):
#
#   tests/slurm/cluster.sh DIR COMMAND [ARGS...]
#
# makes DIR afresh and starts in it munged (a generated key, its own socket), slurmctld
# and slurmd on 127.0.0.1 (free ports) from a generated slurm.conf; the Unix sockets
# (munge's, slurmd's spool) live in a short private /tmp/ddpm-slurm.XXXXXX, so DIR may
# be as deep as any build tree. The cluster has no cgroups, no accounting,
# proctrack/linuxproc, task/none, one partition with this machine's CPUs, requeue
# allowed, short timeouts. Once sinfo shows the node idle it runs COMMAND with
# SLURM_CONF pointing at DIR/slurm.conf (so sbatch, srun, squeue, scontrol use this
# cluster), then cancels what is left, stops every process it started by its pid,
# and exits with COMMAND's status, whatever happens (an error, a signal, a timeout).
#
# When the cluster cannot start here (not root, packages missing, a daemon that dies)
# it prints "SKIP: <reason>" and exits 77 without running COMMAND: ctest's
# SKIP_RETURN_CODE reports the tests as skipped, never passed.
#   tests/slurm/cluster.sh /tmp/c bash     # a shell on a private cluster, to try things
set -uo pipefail

readonly SKIP=77
[ $# -ge 2 ] || { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
dir=$1; shift

skip() {
  echo "SKIP: $*"
  [ -n "${dir:-}" ] && for f in "$dir"/log/*; do
    [ -s "$f" ] && { echo "--- $f"; tail -n 15 "$f"; }
  done
  exit "$SKIP"
}

[ "$(id -u)" -eq 0 ] || skip "the Slurm daemons need root here (slurmd starts job steps as the submitting user)"
for tool in munged slurmctld slurmd sbatch srun squeue sinfo scontrol scancel python3; do
  command -v "$tool" >/dev/null ||
    skip "$tool not found (launch/deps.sh --with-tests installs slurmctld slurmd slurm-client munge)"
done

# A cluster left in DIR by a run that was killed outright (SIGKILL leaves no trap):
# stop its daemons, by the pids it recorded, if they are still those daemons, and
# remove its socket directory.
if [ -f "$dir/run/pids" ]; then
  read -r -a stale <"$dir/run/pids"
  for pid in "${stale[@]}"; do
    case "$(readlink "/proc/$pid/exe" 2>/dev/null)" in
      */munged|*/slurmctld*|*/slurmd*) kill -KILL "$pid" 2>/dev/null ;;
    esac
  done
fi
if [ -f "$dir/run/socket_dir" ]; then
  stale_sockets=$(cat "$dir/run/socket_dir")
  case "$stale_sockets" in /tmp/ddpm-slurm.*) rm -rf "$stale_sockets" ;; esac
fi
rm -rf "$dir"
mkdir -p "$dir"/{log,state,run} || skip "cannot make $dir"
dir=$(cd "$dir" && pwd)
# Unix socket paths hold 107 bytes, and DIR may lie deep in a build tree (a CI build in
# /tmp/build-<commit hash>): the sockets (munge's, slurmd's per-step ones in its spool
# directory) go to a short private directory under /tmp instead, removed at the end.
sockets=$(mktemp -d /tmp/ddpm-slurm.XXXXXX) || skip "cannot make a socket directory under /tmp"
echo "$sockets" >"$dir/run/socket_dir"
mkdir -p "$sockets"/{spool,munge}
chmod 755 "$sockets" "$sockets/munge"  # munged wants its socket reachable by all

started=()  # pids of the daemons, in start order
stop_all() {
  trap '' INT TERM HUP
  # The jobs first: their steps run under slurmstepd, which slurmd does not own.
  if [ ${#started[@]} -ge 3 ] && kill -0 "${started[1]}" 2>/dev/null; then
    timeout 10 scancel --quiet --full --user="$(id -un)" 2>/dev/null
    for _ in $(seq 1 40); do
      [ -z "$(timeout 5 squeue -h -o %i 2>/dev/null)" ] && break
      sleep 0.25
    done
  fi
  unset SLURM_CONF  # from here on, a process that has it in its environment is a leftover
  local i pid
  for ((i = ${#started[@]} - 1; i >= 0; i--)); do
    pid=${started[i]}
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  # Whatever of this cluster outlived its daemons (a slurmstepd holding a socket in our
  # spool directory, a job process with our SLURM_CONF), found and killed by pid.
  local leftovers=()
  for proc in /proc/[0-9]*; do
    pid=${proc#/proc/}
    [ "$pid" = $$ ] && continue
    if tr '\0' '\n' 2>/dev/null <"$proc/environ" | grep -qx "SLURM_CONF=$dir/slurm.conf"; then
      leftovers+=("$pid"); continue
    fi
    for fd in "$proc"/fd/*; do
      case "$(readlink "$fd" 2>/dev/null)" in "$dir"/* | "$sockets"/*) leftovers+=("$pid"); break ;; esac
    done
  done
  [ ${#leftovers[@]} -gt 0 ] && { echo "cluster.sh: killing leftover processes ${leftovers[*]}" >&2
                                   kill -KILL "${leftovers[@]}" 2>/dev/null; }
  rm -rf "$sockets"
  return 0
}
finish() { local s=$?; stop_all; exit "$s"; }
command_pid=""
on_signal() {
  [ -n "$command_pid" ] && kill -TERM "$command_pid" 2>/dev/null
  exit "$1"
}
trap finish EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM
trap 'on_signal 129' HUP

# --- munge -------------------------------------------------------------------------
# A generated key: this cluster trusts nothing but itself.
if ! head -c 1024 /dev/urandom >"$sockets/munge/munge.key" || ! chmod 400 "$sockets/munge/munge.key"; then
  skip "cannot write a munge key"
fi
socket="$sockets/munge/munge.socket"
munged --foreground --force --socket="$socket" --key-file="$sockets/munge/munge.key" \
  --pid-file="$dir/run/munged.pid" --seed-file="$sockets/munge/munged.seed" \
  --log-file="$dir/log/munged.log" >>"$dir/log/munged.log" 2>&1 &
started+=($!)
for _ in $(seq 1 50); do [ -S "$socket" ] && break; kill -0 "${started[0]}" 2>/dev/null || break; sleep 0.1; done
[ -S "$socket" ] || skip "munged did not start"

# --- slurm.conf ----------------------------------------------------------------------
read -r ctld_port slurmd_port < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))')
node=$(hostname -s)  # the real name: Open MPI then sees the allocation as this host
hw=$(slurmd -C 2>/dev/null | head -1)  # NodeName=... CPUs=2 Boards=1 SocketsPerBoard=1 ...
cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$hw")
[ -n "$cpus" ] || skip "slurmd -C does not see this machine's CPUs: $hw"
topology=$(grep -o 'Boards=[0-9]* SocketsPerBoard=[0-9]* CoresPerSocket=[0-9]* ThreadsPerCore=[0-9]*' <<<"$hw")
slurmd_params=""
if [ "$cpus" -lt 2 ]; then  # the tests need two ranks: claim two CPUs on a one-CPU machine
  cpus=2 topology="" slurmd_params="SlurmdParameters=config_overrides"
fi
user=$(id -un)
kill_wait=15  # seconds between SIGTERM and SIGKILL on scancel or the time limit
cat >"$dir/slurm.conf" <<EOF
ClusterName=ddpmtest
SlurmctldHost=$(hostname -s)(127.0.0.1)
MailProg=/bin/true
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=$user
SlurmdUser=$user
# Munge with this cluster's own daemon. cred_expire is also how long a requeued job
# waits before it may start again (Slurm's default: 120 s; DDPM_SLURM_CRED_EXPIRE, 5 to ...).
AuthType=auth/munge
AuthInfo=socket=$socket,cred_expire=${DDPM_SLURM_CRED_EXPIRE:-5}
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$sockets/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups, no accounting: nothing outside DIR is touched.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
$slurmd_params
# Jobs share the node by cores, so that two small jobs run at once.
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1
# Short timeouts, so that the tests are quick.
ReturnToService=2
SlurmctldTimeout=10
SlurmdTimeout=30
MessageTimeout=10
InactiveLimit=0
KillWait=$kill_wait
OverTimeLimit=0
MinJobAge=600
JobRequeue=1
NodeName=$node NodeAddr=127.0.0.1 NodeHostname=$(hostname) CPUs=$cpus $topology State=UNKNOWN
PartitionName=ddpm Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$dir/slurm.conf"

# --- the daemons ---------------------------------------------------------------------
# slurmctld checks time limits (and sends --signal warnings) every 30 s from its start.
DDPM_SLURMCTLD_STARTED=$(date +%s.%N)
export DDPM_SLURMCTLD_STARTED DDPM_SLURM_KILL_WAIT=$kill_wait
slurmctld -D -i -f "$SLURM_CONF" >>"$dir/log/slurmctld.out" 2>&1 &
started+=($!)
slurmd -D -N "$node" -f "$SLURM_CONF" >>"$dir/log/slurmd.out" 2>&1 &
started+=($!)
echo "${started[*]}" >"$dir/run/pids"

deadline=$((SECONDS + 40))
state=""
while [ $SECONDS -lt $deadline ]; do
  for pid in "${started[@]}"; do
    kill -0 "$pid" 2>/dev/null || skip "a daemon (pid $pid) exited at startup"
  done
  state=$(timeout 5 sinfo -h -N -n "$node" -o %t 2>/dev/null)
  [ "$state" = idle ] && break
  sleep 0.5
done
[ "$state" = idle ] || skip "the node did not become idle within 40 s (sinfo: '${state:-no answer}')"
echo "cluster.sh: Slurm $(sinfo -V | awk '{print $2}') up in $dir (sockets in $sockets): munged ${started[0]}," \
     "slurmctld ${started[1]}, slurmd ${started[2]}; node $node $cpus CPUs, idle"

# In the background, so that a signal to this script (ctest's timeout, ^C) tears the
# cluster down at once; in the foreground for an interactive shell.
# DDPM_SLURM_TIMEOUT (seconds): stop COMMAND (SIGTERM) after that long, so that the
# teardown runs before whatever runs this script gives up on it.
if [ -t 0 ]; then
  "$@"
else
  if [ -n "${DDPM_SLURM_TIMEOUT:-}" ]; then
    timeout --kill-after=10 "$DDPM_SLURM_TIMEOUT" "$@" &
  else
    "$@" &
  fi
  command_pid=$!
  wait "$command_pid"
fi
