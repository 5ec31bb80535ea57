#!/usr/bin/env bash
# bench/gpu_check.sh: the GPU check of the CUDA backend, as one call of the device tool
# (a fresh copy of the tree on a machine with one H100/H200, 16 cores, python3 with
# torch, no network). It must end within 8 minutes (DDPM_GPU_CHECK_BUDGET seconds, 450
# by default); each step checks the time left and is skipped, not started, when it
# would not fit. Every step is guarded: a failure is recorded and the script goes on.
#
#   1. builds the CUDA backend, its tests, ddpm_gpu_bench and the apps (-j16, only the
#      card's architecture);
#   2. runs the gpu-labelled tests: every CudaOps kernel and the whole U-Net forward and
#      backward against the CPU on the cifar10 / 256x256 shapes, per precision;
#   3. trains 50 steps of the tiny config with ddpm_train on the GPU and on the CPU from
#      the same weights and data, and compares the losses step by step;
#   4. times a training step at batch 128 (cifar10) and 16 (celebahq256) in fp32, tf32
#      and bf16, and the same in PyTorch eager and torch.compile (bench/torch_unet.py);
#   5. times 1000-step sampling of 256 cifar10 images (graph replay per step);
# and writes bench/results/gpu_check-<date>.md (card, date, every figure), also into
# $OUT when the device tool sets it.
#
# Dependencies: the build needs the Debian -dev packages of launch/deps.sh. Where the
# GPU machine lacks them and has no network, prepare a bundle here first:
#   bash bench/gpu_check.sh --fetch-deps      (writes .gpudeps/*.deb, git-ignored)
# and carry it: run(command="bash bench/gpu_check.sh", carry=[".gpudeps"]). The script
# unpacks it under /tmp/ddpm-deps and points CMake and the loader there, preferring the
# machine's own copy of any shared library it already has.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

# --- the dependency bundle (run here, on the developer machine) ----------------------
DEPS_DEBS=(
  libdnnl-dev libdnnl2 ocl-icd-libopencl1 ocl-icd-opencl-dev opencl-c-headers
  libhdf5-dev libhdf5-103-1 libhdf5-hl-100 libaec0 libaec-dev libsz2
  libyaml-cpp-dev libyaml-cpp0.7
  libboost1.74-dev libboost-test1.74-dev libboost-test1.74.0 libboost-test-dev
  libopenmpi-dev libopenmpi3 openmpi-bin openmpi-common libevent-core-2.1-7 libevent-pthreads-2.1-7
  libhwloc15 libpmix2 libfabric1 libucx0 libibverbs1 librdmacm1 libnl-3-200 libnl-route-3-200 libpsm2-2
  libpsm-infinipath1 libnuma1 libmunge2 libpciaccess0 libxnvctrl0 libltdl7
  libpng-dev libpng16-16 libjpeg-dev libjpeg62-turbo-dev libjpeg62-turbo libwebp-dev libwebp7 libwebpdemux2
  libwebpmux3 liblmdb-dev liblmdb0 zlib1g-dev libeigen3-dev pkgconf pkgconf-bin libpkgconf3
)
if [ "${1:-}" = "--fetch-deps" ]; then
  mkdir -p .gpudeps
  grep -qx '/.gpudeps/' .git/info/exclude 2>/dev/null || echo '/.gpudeps/' >> .git/info/exclude
  apt-get update -qq || true
  (cd .gpudeps && apt-get download "${DEPS_DEBS[@]}") || { echo "apt-get download failed" >&2; exit 1; }
  echo "bundle: $(ls .gpudeps/*.deb | wc -l) packages, $(du -sh .gpudeps | cut -f1) in .gpudeps/ (carry it)"
  exit 0
fi

# --- bookkeeping ------------------------------------------------------------------------
START=$(date +%s)
BUDGET=${DDPM_GPU_CHECK_BUDGET:-450}
JOBS=${DDPM_GPU_CHECK_JOBS:-16}
BUILD=${DDPM_GPU_CHECK_BUILD:-build-gpu}
STAMP=$(date +%Y%m%d-%H%M%S)
mkdir -p bench/results
REPORT=bench/results/gpu_check-$STAMP.md
LOGDIR=/tmp/ddpm-gpu-check-$STAMP
mkdir -p "$LOGDIR"
left() { echo $((BUDGET - ($(date +%s) - START))); }
note() { echo "$*" | tee -a "$REPORT"; }
# fits SECONDS: true when that much budget is left (else records the skip)
fits() {
  if [ "$(left)" -lt "$1" ]; then
    note "- skipped: $2 (needs ~$1 s, $(left) s left)"
    return 1
  fi
}
# timed NAME LIMIT CMD...: runs CMD with a time limit, log in $LOGDIR/NAME.log; returns its status
timed() {
  local name=$1 limit=$2
  shift 2
  local t0
  t0=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" >"$LOGDIR/$name.log" 2>&1
  local rc=$?
  echo "[$name] exit $rc after $(($(date +%s) - t0)) s" >>"$LOGDIR/steps.log"
  return $rc
}
result() { grep '^RESULT' "$1" 2>/dev/null | tail -1 | tr ' ' '\n' | awk -F= -v k="$2" '$1==k{print $2}'; }
finish() {
  note ""
  note "Total time: $(($(date +%s) - START)) s of a ${BUDGET} s budget. Logs: $LOGDIR (tails below)."
  {
    echo
    echo '<details><summary>log tails</summary>'
    echo
    echo '```'
    for f in "$LOGDIR"/*.log; do
      echo "== $(basename "$f")"
      tail -n 25 "$f"
    done
    echo '```'
    echo '</details>'
  } >>"$REPORT"
  if [ -n "${OUT:-}" ]; then
    cp "$REPORT" "$OUT/" 2>/dev/null
    tar -czf "$OUT/gpu_check-logs.tar.gz" -C "$LOGDIR" . 2>/dev/null
  fi
  echo "report: $REPORT"
}
trap finish EXIT

CARD=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)
CAP=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '.')
TORCH=$(python3 -c 'import torch; print(torch.__version__)' 2>/dev/null)
{
  echo "# GPU check of the CUDA backend ($STAMP)"
  echo
  echo "- card: ${CARD:-none found}"
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "- nvcc: $(nvcc --version 2>/dev/null | tail -1), cmake $(cmake --version 2>/dev/null | head -1 | awk '{print $3}'), torch ${TORCH:-absent}, $(nproc) cores"
  echo
} >"$REPORT"
[ -n "$CAP" ] || CAP=90

# --- 1. dependencies and build ----------------------------------------------------------
DEPS=/tmp/ddpm-deps
CMAKE_EXTRA=()
RUN_ENV=()  # environment for our C++ programs only (not for python/torch)
unpack_bundle() {
  [ -d .gpudeps ] && ls .gpudeps/*.deb >/dev/null 2>&1 || return 1
  mkdir -p "$DEPS"
  local f member
  for f in .gpudeps/*.deb; do
    if command -v dpkg-deb >/dev/null; then
      dpkg-deb -x "$f" "$DEPS"
    else
      member=$(ar t "$f" | grep '^data.tar')
      ar p "$f" "$member" | tar -x -C "$DEPS" --auto-compress -f - 2>/dev/null ||
        ar p "$f" "$member" | tar -xJ -C "$DEPS" -f -
    fi
  done
  local lib=$DEPS/usr/lib/x86_64-linux-gnu so soname sys
  # The machine's copy of a library it already has wins (same soname, same ABI).
  while IFS= read -r so; do
    soname=$(objdump -p "$so" 2>/dev/null | awk '/SONAME/{print $2}')
    [ -n "$soname" ] || continue
    sys=$(ldconfig -p | awk -v s="$soname" '$1==s{print $NF; exit}')
    [ -n "$sys" ] && [ -e "$sys" ] && ln -sf "$sys" "$so"
  done < <(find "$lib" -name '*.so.*' -type f)
  export OPAL_PREFIX=$DEPS/usr OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  export PKG_CONFIG_LIBDIR=$lib/pkgconfig:$DEPS/usr/share/pkgconfig PKG_CONFIG_SYSROOT_DIR=$DEPS
  local ld=$lib:$lib/hdf5/serial:$lib/openmpi/lib
  # FindHDF5 without its h5cc wrapper (whose paths point at /usr): the two cache entries.
  CMAKE_EXTRA+=(-DCMAKE_PREFIX_PATH="$DEPS/usr"
    -DHDF5_C_INCLUDE_DIR="$DEPS/usr/include/hdf5/serial" -DHDF5_hdf5_LIBRARY_RELEASE="$lib/hdf5/serial/libhdf5.so"
    -DMPI_CXX_COMPILER="$DEPS/usr/bin/mpicxx.openmpi" -DCMAKE_BUILD_RPATH="$ld")
  command -v pkg-config >/dev/null || CMAKE_EXTRA+=(-DPKG_CONFIG_EXECUTABLE="$DEPS/usr/bin/pkgconf")
  RUN_ENV=(env LD_LIBRARY_PATH="$ld${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" PATH="$DEPS/usr/bin:$PATH")
  note "- dependencies: unpacked $(ls .gpudeps/*.deb | wc -l) Debian packages from .gpudeps into $DEPS"
}
configure() {
  timed configure 240 cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDDPM_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="$CAP" -DDDPM_BUILD_BENCH=OFF "${CMAKE_EXTRA[@]}"
}

note "## Build"
BUILT=0
# DDPM_GPU_CHECK_BUNDLE=always uses .gpudeps even where the machine's own packages would do.
[ "${DDPM_GPU_CHECK_BUNDLE:-auto}" = always ] && unpack_bundle
if configure || { [ "${DDPM_GPU_CHECK_BUNDLE:-auto}" = auto ] && unpack_bundle && rm -rf "$BUILD" && configure; }; then
  if [ "${DDPM_GPU_CHECK_ONLY:-}" = configure ]; then
    note "- configured (DDPM_GPU_CHECK_ONLY=configure: stopping here)"
    exit 0
  elif grep -q "CUDA backend: on" "$LOGDIR/configure.log"; then
    TARGETS=(test_gpu_layers test_gpu_kernels test_gpu_unet test_gpu_op_registry test_gpu_inception test_gpu_bpd ddpm_gpu_bench)
    for t in test_nccl_allreduce ddpm_train ddpm_prepare; do
      ninja -C "$BUILD" -t targets all 2>/dev/null | grep -q "^$t:" && TARGETS+=("$t")
    done
    t0=$(date +%s)
    if timed build 300 cmake --build "$BUILD" -j "$JOBS" --target "${TARGETS[@]}"; then
      BUILT=1
      note "- built ${TARGETS[*]} for sm_$CAP in $(($(date +%s) - t0)) s"
    else
      note "- **build failed** (see build.log below)"
    fi
  else
    note "- **configure did not enable the CUDA backend**: $(grep 'CUDA backend' "$LOGDIR/configure.log")"
  fi
else
  note "- **configure failed** (missing dependencies? prepare .gpudeps with --fetch-deps and carry it)"
fi
BIN=$BUILD

# --- 2. GPU tests against the CPU reference ----------------------------------------------
note ""
note "## Kernels, U-Net, Inception and the bound against the CPU reference"
if [ $BUILT = 1 ]; then
  note ""
  note "| test | result | seconds |"
  note "| --- | --- | --- |"
  for t in test_gpu_kernels test_gpu_layers test_gpu_unet test_gpu_op_registry test_gpu_inception test_gpu_bpd test_nccl_allreduce; do
    exe=$(find "$BIN/tests/gpu" -maxdepth 1 -name "$t" -type f 2>/dev/null | head -1)
    [ -n "$exe" ] || continue
    fits 30 "$t" || continue
    t0=$(date +%s)
    (cd "$BIN/tests/gpu" && timed "$t" 150 "${RUN_ENV[@]}" "./$t" --log_level=test_suite --report_level=short)
    rc=$?
    case $rc in 0) r=passed ;; 77) r=skipped ;; 124 | 137) r="**timed out**" ;; *) r="**FAILED** (exit $rc)" ;; esac
    note "| $t | $r | $(($(date +%s) - t0)) |"
  done
fi

# --- 3. 50 training steps, GPU against CPU -----------------------------------------------
note ""
note "## 50 training steps: GPU against CPU (tiny config, same weights, data, noise and dropout)"
train_compare() {
  [ -x "$BIN/src/apps/ddpm_train" ] && [ -x "$BIN/src/apps/ddpm_prepare" ] || {
    note "- skipped: ddpm_train / ddpm_prepare not built"
    return
  }
  local data=/tmp/ddpm-gpu-check-data images=/tmp/ddpm-gpu-check-images
  python3 - "$images" <<'PY' || { note "- could not write the synthetic images"; return; }
import os, sys, zlib, struct
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
def png(path, w, h, rows):
    raw = b"".join(b"\x00" + bytes(r) for r in rows)
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
for i in range(64):  # smooth colour ramps, one per image
    rows = [[(x * 16 + i * 7) % 256 if c == 0 else (y * 16 + i * 13) % 256 if c == 1 else (x * y + i * 29) % 256
             for x in range(16) for c in range(3)] for y in range(16)]
    png(os.path.join(out, f"img{i:03d}.png"), 16, 16, rows)
PY
  timed prepare 60 "${RUN_ENV[@]}" "$BIN/src/apps/ddpm_prepare" folder --src "$images" --out "$data" --quiet ||
    { note "- ddpm_prepare failed (prepare.log)"; return; }
  local common=(--config configs/tiny.yaml --no-progress --set "data.path=$data" --set train.total_steps=50
    --set train.log_every=1 --set train.sample_every=0 --set train.checkpoint_every=50)
  local prec kind
  for prec in fp32 bf16; do
    for kind in cuda cpu; do
      [ $kind = cpu ] && [ $prec = bf16 ] && continue  # one CPU run serves both
      fits 45 "50-step training ($kind $prec)" || return
      rm -rf "/tmp/ddpm-gpu-check-run-$kind-$prec"
      timed "train-$kind-$prec" 150 "${RUN_ENV[@]}" "$BIN/src/apps/ddpm_train" "${common[@]}" \
        --run-dir "/tmp/ddpm-gpu-check-run-$kind-$prec" --set "device.kind=$kind" --set "device.precision=$prec" ||
        note "- ddpm_train on $kind ($prec) failed (train-$kind-$prec.log)"
    done
    python3 - "/tmp/ddpm-gpu-check-run-cuda-$prec/metrics.jsonl" /tmp/ddpm-gpu-check-run-cpu-fp32/metrics.jsonl \
      "$prec" <<'PY' | tee -a "$REPORT"
import json, sys
def losses(path):
    out = {}
    try:
        for line in open(path):
            m = json.loads(line)
            if "loss" in m:
                out[int(m.get("step", len(out) + 1))] = float(m["loss"])
    except OSError:
        pass
    return out
gpu, cpu, prec = losses(sys.argv[1]), losses(sys.argv[2]), sys.argv[3]
steps = sorted(set(gpu) & set(cpu))
if not steps:
    print(f"- {prec}: no losses to compare ({len(gpu)} GPU, {len(cpu)} CPU logged steps)")
    sys.exit(0)
rel = [abs(gpu[s] - cpu[s]) / max(abs(cpu[s]), 1e-12) for s in steps]
bound = 1e-3 if prec == "fp32" else 5e-2
verdict = "within" if max(rel) <= bound else "**outside**"
print(f"- {prec}: {len(steps)} steps, loss at step {steps[0]}: GPU {gpu[steps[0]]:.6f} CPU {cpu[steps[0]]:.6f}; "
      f"at step {steps[-1]}: GPU {gpu[steps[-1]]:.6f} CPU {cpu[steps[-1]]:.6f}; "
      f"max relative difference {max(rel):.2e} ({verdict} {bound:g})")
PY
  done
}
if [ $BUILT = 1 ]; then train_compare; else note "- skipped: nothing built"; fi

# --- 4. training-step timings: ddpm against PyTorch ---------------------------------------
note ""
note "## Training step (forward, loss, backward, clip, Adam), images per second"
note ""
note "| model | batch | precision | ddpm | PyTorch eager | torch.compile | ddpm / eager | ddpm / compile |"
note "| --- | --- | --- | --- | --- | --- | --- | --- |"
declare -A OURS EAGER COMPILED
MODELS=("cifar10.yaml 128" "celebahq256.yaml 16")
for m in "${MODELS[@]}"; do
  read -r cfg batch <<<"$m"
  for prec in bf16 tf32 fp32; do
    key="$cfg-$prec"
    if [ $BUILT = 1 ] && fits 40 "ddpm timing $cfg $prec"; then
      timed "ours-$key" 120 "${RUN_ENV[@]}" "$BIN/tests/gpu/ddpm_gpu_bench" --mode train --config "configs/$cfg" \
        --batch "$batch" --precision "$prec" --steps 8 --warmup 3 && OURS[$key]=$(result "$LOGDIR/ours-$key.log" train_img_s)
    fi
    if [ -n "$TORCH" ] && fits 35 "PyTorch eager $cfg $prec"; then
      timed "eager-$key" 100 python3 bench/torch_unet.py --device cuda --mode train --config "configs/$cfg" \
        --batch "$batch" --precision "$prec" --steps 8 --warmup 3 &&
        EAGER[$key]=$(result "$LOGDIR/eager-$key.log" train_img_s)
    fi
  done
done

# --- 5. sampling ---------------------------------------------------------------------------
note ""
note "## Sampling: 256 cifar10 images, 1000 ancestral steps (each step's forward a CUDA graph)"
note ""
for prec in bf16 tf32; do
  if [ $BUILT = 1 ] && fits 60 "sampling $prec"; then
    if timed "sample-$prec" 150 "${RUN_ENV[@]}" "$BIN/tests/gpu/ddpm_gpu_bench" --mode sample \
      --config configs/cifar10.yaml --batch 256 --steps 1000 --precision "$prec"; then
      note "- $prec: $(result "$LOGDIR/sample-$prec.log" sample_s) s for $(result "$LOGDIR/sample-$prec.log" steps) steps (goal: under 5 s)"
    else
      note "- $prec: sampling failed (sample-$prec.log)"
    fi
  fi
done

# --- torch.compile last: its compile time is the least predictable -------------------------
for m in "${MODELS[@]}"; do
  read -r cfg batch <<<"$m"
  for prec in bf16 tf32 fp32; do
    key="$cfg-$prec"
    if [ -n "$TORCH" ] && fits 100 "torch.compile $cfg $prec"; then
      timed "compile-$key" $(($(left) < 180 ? $(left) - 10 : 170)) python3 bench/torch_unet.py --device cuda \
        --mode train --compile --config "configs/$cfg" --batch "$batch" --precision "$prec" --steps 8 --warmup 2 &&
        COMPILED[$key]=$(result "$LOGDIR/compile-$key.log" train_img_s)
    fi
  done
done

ratio() { [ -n "$1" ] && [ -n "$2" ] && python3 -c "print(f'{$1 / $2:.2f}')" 2>/dev/null || echo "-"; }
TABLE=()
for m in "${MODELS[@]}"; do
  read -r cfg batch <<<"$m"
  for prec in bf16 tf32 fp32; do
    key="$cfg-$prec"
    o=${OURS[$key]:-}
    e=${EAGER[$key]:-}
    c=${COMPILED[$key]:-}
    TABLE+=("| ${cfg%.yaml} | $batch | $prec | ${o:--} | ${e:--} | ${c:--} | $(ratio "$o" "$e") | $(ratio "$o" "$c") |")
  done
done
# The timing table belongs under its heading: rewrite the report with it in place.
python3 - "$REPORT" "${TABLE[@]}" <<'PY'
import sys
path, rows = sys.argv[1], sys.argv[2:]
text = open(path).read()
anchor = "| --- | --- | --- | --- | --- | --- | --- | --- |\n"
i = text.find(anchor)
if i >= 0:
    text = text[: i + len(anchor)] + "".join(r + "\n" for r in rows) + text[i + len(anchor):]
open(path, "w").write(text)
PY
note ""
note "Goal: ddpm at least 1.3x PyTorch eager on the same card."
