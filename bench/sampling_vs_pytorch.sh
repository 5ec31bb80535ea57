#!/usr/bin/env bash
# bench/sampling_vs_pytorch.sh [CONFIG] [STEPS]
# Sampling speed: U-Net evaluations (eval mode, no gradients: one step of the reverse
# process) per second at batch 8 and 64, ddpm against the same model in PyTorch on this
# machine, side by side. Ends with `sample_ratio_b8=R sample_ratio_b64=R` (ours / PyTorch).
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-configs/cifar10.yaml}
steps=${2:-5}
threads=$(nproc)
source launch/deps.sh
ddpm_ensure_packages --with-tests
[ -x build/bench/bench_unet ] || ddpm_build build >/dev/null
ratios=()
for batch in 8 64; do
  ours=$(OMP_NUM_THREADS=$threads build/bench/bench_unet --config "$config" --batch "$batch" --steps "$steps" \
    --warmup 1 --mode forward | grep '^RESULT')
  theirs=$(OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=$threads /usr/bin/python3 bench/torch_unet.py --config "$config" \
    --batch "$batch" --steps "$steps" --warmup 1 --threads "$threads" --mode forward | grep '^RESULT')
  o=$(echo "$ours" | tr ' ' '\n' | awk -F= '$1=="forward_img_s"{print $2}')
  t=$(echo "$theirs" | tr ' ' '\n' | awk -F= '$1=="forward_img_s"{print $2}')
  line=$(/usr/bin/python3 -c "
o, t, b = $o, $t, $batch
print(f'batch {b:3d}: ddpm {o / b:6.3f} evals/s ({o:7.2f} img-steps/s)   pytorch {t / b:6.3f} evals/s ({t:7.2f} img-steps/s)   ratio {o / t:.2f}')")
  echo "$line"
  ratios+=("sample_ratio_b$batch=$(/usr/bin/python3 -c "print(f'{$o / $t:.2f}')")")
done
echo "${ratios[*]}"
