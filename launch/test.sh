#!/usr/bin/env bash
# The README's test command: installs whatever Debian packages are missing, builds
# everything with CMake and runs every ctest suite (labels: unit, mpi, gpu, e2e, slurm).
#   bash launch/test.sh            all tests
#   bash launch/test.sh -L unit    only one label (any ctest arguments pass through)
set -euo pipefail
cd "$(dirname "$0")/.."
source launch/deps.sh
ddpm_ensure_packages --with-tests
ddpm_build build
# ctest runs two tests at a time; one OpenMP thread each keeps their spin-waiting
# threads from fighting over the cores (the MPI tests pass their own).
cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # nproc obeys OMP_NUM_THREADS
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
ctest --test-dir build --output-on-failure -j "$cores" "$@"
