#!/usr/bin/env bash
# The GPU measurements of issue 19 in one call, for a machine with a CUDA device:
#   bash benchmarks/gpu_suite.sh OUTDIR
# writes, as JSON under OUTDIR: the inversion engine's speed (benchmarks/inversion_speed.py --quick)
# with StyleGAN2's modulated convolution in NVIDIA's fused grouped form (CUDA's default) and in the
# non-fused form, batches 1/4/8/16, peak CUDA memory; and diffusion sampling / inversion with
# classifier-free guidance batched and as two calls (benchmarks/diffusion_speed.py). Each command's
# stderr goes beside its JSON. Set PYTHON to the interpreter of the install (default: python).
set -euo pipefail
out=${1:?usage: bash benchmarks/gpu_suite.sh OUTDIR}
py=${PYTHON:-python}
mkdir -p "$out"
"$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: this suite needs one')"
nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true
for form in auto nonfused; do
  "$py" benchmarks/inversion_speed.py --device cuda --quick --modconv "$form" \
    > "$out/inversion_speed_$form.json" 2> "$out/inversion_speed_$form.log"
done
"$py" benchmarks/diffusion_speed.py --device cuda --batch 16 --repeats 5 \
  > "$out/diffusion_speed.json" 2> "$out/diffusion_speed.log"
echo "wrote $(ls "$out" | wc -l) files to $out"
