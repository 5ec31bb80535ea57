#!/usr/bin/env bash
# launch/fresh_check.sh: proves that the README's two commands work on a bare Debian 12
# machine. It builds a minimal Debian root (debootstrap --variant=minbase bookworm, from
# the Debian mirror this machine's apt already uses) in a folder of its own, copies a
# clean clone of this repository (its committed HEAD) into it, and runs inside it, under
# chroot with proc, sys and dev mounted:
#     bash launch/demo.sh     then     bash launch/test.sh
# It prints the wall time and the last lines of each, and exits non-zero when either
# fails. Everything is undone on exit or Ctrl-C: processes left in the root are stopped,
# the mounts are taken down and the folder is removed (unless --keep).
#
# The root gets nothing from this machine but its network settings: resolv.conf, the
# Debian apt sources and Acquire:: options, and any CA certificate this machine trusts
# beyond Debian's own (a TLS-inspecting proxy's, say), as a fresh machine of the same
# network would have. Not part of CI (it takes about half an hour); run it before
# resolving anything that changes what gets installed.
#
#   bash launch/fresh_check.sh [--test-only] [--keep] [--root DIR]
#     --test-only   run only launch/test.sh
#     --keep        leave the root folder in place (mounts are still taken down)
#     --root DIR    where to build the root (default /var/tmp/ddpm-fresh-PID)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
repo=$(pwd)

test_only=0 keep=0 root=/var/tmp/ddpm-fresh-$$
while [ $# -gt 0 ]; do
  case "$1" in
    --test-only) test_only=1; shift ;;
    --keep) keep=1; shift ;;
    --root) root=$2; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "fresh_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "fresh_check.sh: needs root (debootstrap, chroot, mount)" >&2; exit 2; }
if [ -e "$root" ]; then
  echo "fresh_check.sh: $root already exists; remove it or pick another --root" >&2
  exit 2
fi
logs=/var/tmp/ddpm-fresh-logs-$(date +%Y%m%d-%H%M%S)
mkdir -p "$logs" "$root" || exit 2
root=$(realpath "$root")
start=$(date +%s)
say() { echo "[fresh_check $(( $(date +%s) - start ))s] $*"; }

# --- undo everything, whatever happened ----------------------------------------------
processes_in_root() {
  local p
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && echo "${p#/proc/}"
  done
}
mounts_under_root() { awk -v r="$root" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/self/mounts; }
cleanup() {
  local status=$? pids
  trap - EXIT INT TERM
  pids=$(processes_in_root)
  if [ -n "$pids" ]; then
    say "stopping processes left in the root: $(echo $pids)"
    kill -TERM $pids 2>/dev/null; sleep 2
    pids=$(processes_in_root); [ -n "$pids" ] && kill -KILL $pids 2>/dev/null; sleep 1
  fi
  local m
  for m in dev sys proc; do
    mountpoint -q "$root/$m" && { umount -R "$root/$m" 2>/dev/null || umount -R -l "$root/$m"; }
  done
  if [ -n "$(mounts_under_root)" ]; then
    echo "fresh_check.sh: still mounted, leaving $root in place: $(mounts_under_root | tr '\n' ' ')" >&2
    status=1
  elif [ $keep -eq 0 ]; then
    rm -rf --one-file-system "$root"
  else
    say "kept the root: $root"
  fi
  say "logs: $logs"
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the Debian mirror apt uses here ---------------------------------------------------
# The first bookworm source with component main, from one-line or deb822 files.
debian_mirror() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] && awk '$1 == "deb" && $0 ~ / bookworm / && $0 ~ / main/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && awk 'BEGIN { RS = ""; FS = "\n" }
      { uri = ""; ok = 0; main = 0
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/) { split($i, a, " "); uri = a[2] }
          if ($i ~ /^Suites:/ && $i ~ / bookworm( |$)/) ok = 1
          if ($i ~ /^Components:/ && $i ~ / main( |$)/) main = 1 }
        if (uri != "" && ok && main) print uri }' "$f"
  done
}
mirror=$(debian_mirror | head -1)
[ -n "$mirror" ] || { echo "fresh_check.sh: found no bookworm main source in /etc/apt" >&2; exit 2; }

if ! command -v debootstrap >/dev/null; then
  say "installing debootstrap on this machine"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null ||
    { echo "fresh_check.sh: could not install debootstrap" >&2; exit 1; }
fi

commit=$(git rev-parse --short HEAD)
[ -n "$(git status --porcelain --untracked-files=no)" ] &&
  say "note: uncommitted changes are not checked (the clone is of HEAD $commit)"
say "debootstrap --variant=minbase bookworm $root from $mirror"
t0=$(date +%s)
if ! debootstrap --variant=minbase bookworm "$root" "$mirror" >"$logs/debootstrap.log" 2>&1; then
  tail -5 "$logs/debootstrap.log"
  echo "fresh_check.sh: debootstrap failed (log: $logs/debootstrap.log)" >&2
  exit 1
fi
debootstrap_s=$(( $(date +%s) - t0 ))

# --- this machine's network settings, nothing else ------------------------------------
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] && grep -q '/debian' "$f" && cp "$f" "$root$f"
done
for f in /etc/apt/apt.conf.d/*; do
  [ -f "$f" ] && grep -q '^Acquire::' "$f" && cp "$f" "$root/etc/apt/apt.conf.d/"
done
# CA certificates this machine trusts beyond Debian's bundle: Debian's ca-certificates
# (once launch/deps.sh installs it) adds /usr/local/share/ca-certificates to its bundle.
mkdir -p "$root/usr/local/share/ca-certificates"
python3 - /etc/ssl/certs/ca-certificates.crt "$root/usr/local/share/ca-certificates" <<'PY'
import glob, os, re, sys
pem = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)
norm = lambda s: "".join(s.split())
known = set()
for path in glob.glob("/usr/share/ca-certificates/**/*.crt", recursive=True):
    known.update(norm(c) for c in pem.findall(open(path, errors="replace").read()))
extra = [c for c in pem.findall(open(sys.argv[1], errors="replace").read()) if norm(c) not in known]
for i, c in enumerate(extra):
    with open(os.path.join(sys.argv[2], f"this-machine-{i}.crt"), "w") as f:
        f.write(c + "\n")
print(f"{len(extra)} CA certificate(s) beyond Debian's")
PY

say "copying a clean clone of HEAD ($commit) to /root/ddpm in the root"
git clone -q --no-hardlinks "$repo" "$root/root/ddpm" || exit 1

# /sys with what is mounted below it, as a booted Debian machine has it: systemd mounts
# the cgroup file system there, which slurmd needs to start (tests/slurm).
mount -t proc proc "$root/proc" && mount --rbind /sys "$root/sys" && mount --make-rslave "$root/sys" &&
  mount --rbind /dev "$root/dev" && mount --make-rslave "$root/dev" ||
  { echo "fresh_check.sh: mounting proc, sys and dev failed" >&2; exit 1; }

# run_in_root NAME COMMAND: runs COMMAND in the repository inside the root, with a clean
# environment, logging to $logs/NAME.log; prints its wall time and last lines.
declare -A took status_of
run_in_root() {
  local name=$1 cmd=$2 t status
  say "running '$cmd' in the fresh root (log: $logs/$name.log)"
  t=$(date +%s)
  chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /bin/bash -c "cd /root/ddpm && $cmd" </dev/null >"$logs/$name.log" 2>&1
  status=$?
  took[$name]=$(( $(date +%s) - t ))
  status_of[$name]=$status
  echo "----- last lines of '$cmd' (exit status $status, ${took[$name]} s) -----"
  tail -n 8 "$logs/$name.log"
  echo "-----"
}
mmss() { printf '%d min %02d s' $(($1 / 60)) $(($1 % 60)); }

failed=0
if [ $test_only -eq 0 ]; then
  run_in_root demo "bash launch/demo.sh"
  [ "${status_of[demo]}" -eq 0 ] || failed=1
fi
run_in_root test "bash launch/test.sh"
[ "${status_of[test]}" -eq 0 ] || failed=1

echo
echo "fresh_check: commit $commit, bare Debian 12 root from $mirror ($(nproc) cores)"
echo "  debootstrap minbase:   $(mmss $debootstrap_s)"
[ $test_only -eq 0 ] && echo "  bash launch/demo.sh:   $(mmss "${took[demo]}")  exit ${status_of[demo]}"
echo "  bash launch/test.sh:   $(mmss "${took[test]}")  exit ${status_of[test]}"
[ $failed -eq 0 ] && echo "fresh_check: PASSED" || echo "fresh_check: FAILED"
exit $failed
