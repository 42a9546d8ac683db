#!/usr/bin/env bash
# The GPU checks in one run, sized for under 10 minutes on one H100/H200-class GPU:
#   1. the CUDA-only tests (AMP bf16, fp16 + GradScaler, CUDA RNG in checkpoints, NCCL DDP when
#      there are 2 GPUs) and the cuda / cuda-fp16 bench backends;
#   2. the full-size synthetic PAMAP2 preparation (har synth --full-size, har prepare);
#   3. har train on it for 2 epochs at fp32 and with AMP: epoch 2's seconds are the timed epoch
#      (epoch 1 pays for cuDNN's autotuning); targets: AMP >= 2x fp32, an epoch <= 5 s;
#   4. har bench's cuda backends on that run.
# Usage, from the repository root on the GPU machine (its python3 holds torch with CUDA):
#   bash benchmarks/gpu_check.sh [OUT]        # 8 files go to OUT (default gpu_check): machine.txt
#   (GPU, torch, synth/prepare times), tests.log, train.log, metrics-{no-amp,amp}.csv,
#   summary.txt, bench.log, bench.json
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-gpu_check}}
PY=${PYTHON:-python3}
WORK=${WORK:-/tmp/harkit-gpu}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$WORK"
status=0
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  $PY -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
          torch.cuda.get_device_name(0), "bf16", torch.cuda.is_bf16_supported())'
  nproc
} 2>&1 | tee "$OUT/machine.txt"

echo "== 1. CUDA-only tests"
$PY -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py "tests/test_bench.py" -k "cuda" \
    2>&1 | tee "$OUT/tests.log" || status=1

echo "== 2. full-size synthetic preparation"
if [ ! -f "$WORK/prep/meta.json" ]; then
  /usr/bin/time -f "synth %e s" $PY -m har synth pamap2 "$WORK/raw" --full-size --force \
      2>&1 | tee -a "$OUT/machine.txt"
  /usr/bin/time -f "prepare %e s" $PY -m har prepare "$WORK/raw" --out "$WORK/prep" --force \
      --no-cache 2>&1 | tail -4 | tee -a "$OUT/machine.txt"
fi

echo "== 3. one timed epoch, fp32 and AMP"
for amp in no-amp amp; do
  rm -rf "$WORK/run-$amp"
  $PY -m har train --data "$WORK/prep" --device cuda --"$amp" --epochs 2 --batch-size 128 \
      --out "$WORK/run-$amp" 2>&1 | tee -a "$OUT/train.log" || status=1
  cp "$WORK/run-$amp/metrics.csv" "$OUT/metrics-$amp.csv" 2>/dev/null || status=1
done
$PY - "$OUT" <<'PY' | tee "$OUT/summary.txt"
import csv, sys
out = sys.argv[1]
epoch = {}
for amp in ("no-amp", "amp"):
    with open(f"{out}/metrics-{amp}.csv") as fh:
        rows = list(csv.DictReader(fh))
    epoch[amp] = float(rows[-1]["epoch_s"])
    print(f"{amp:7s} epoch {rows[-1]['epoch']}: {epoch[amp]:.2f} s train, "
          f"{float(rows[-1]['val_infer_s']):.2f} s val, val macro F1 {float(rows[-1]['val_f1_macro']):.4f}")
print(f"AMP speed-up {epoch['no-amp'] / epoch['amp']:.2f}x (target >= 2x); "
      f"AMP epoch {epoch['amp']:.2f} s (target <= 5 s)")
PY

echo "== 4. har bench, cuda backends"
$PY -m har bench --checkpoint "$WORK/run-amp/best.pt" --data "$WORK/prep" --runs 200 \
    --backend cuda,cuda-fp16,eager --batch-sizes 1,32,256 --json "$OUT/bench.json" \
    2>&1 | tee "$OUT/bench.log" || status=1
exit $status
