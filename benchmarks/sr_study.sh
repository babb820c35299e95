#!/bin/bash
# CPU-scale SR study (docs/benchmarks.md, "Super-resolution"): MDBN x2 vs a plain residual net of the same
# parameter count, same data stream, schedule and budget; then bicubic, the SR distillation run, and the
# 2048² memory benchmark. Run from the repository root, in the background:
#   nohup benchmarks/sr_study.sh > runs/sr/study.log 2>&1 &
set -e
cd "$(dirname "$0")/.."
SK=.venv/bin/spectralkd
export OMP_NUM_THREADS=1
SETS="../shared/data/sr/Set5 ../shared/data/sr/Set14"
for c in mdbn_x2_cpu plain_x2_cpu; do
  echo "== $c $(date)"
  if [ -f runs/sr/$c/last.pt ]; then $SK sr train --resume runs/sr/$c --set progress=false
  else $SK sr train --config configs/sr/$c.yaml --set progress=false; fi
  for w in best last; do
    $SK sr test --model mdbn --weights runs/sr/$c/$w.safetensors --scale 2 --data $SETS --out runs/sr/$c/test_$w.json
  done
done
$SK sr test --model bicubic --scale 2 --data $SETS --out runs/sr/bicubic_x2.json
$SK sr analyze --weights runs/sr/mdbn_x2_cpu/best.safetensors \
  --image ../shared/data/sr/Set5/image_SRF_2/img_001_SRF_2_LR.png --out runs/sr/analyze_mdbn_x2
echo "== distill $(date)"
$SK sr distill --config configs/sr/distill_x2_cpu.yaml --set progress=false
$SK sr test --model mdbn --weights runs/sr/distill_x2_cpu/best.safetensors --scale 2 --data $SETS \
  --out runs/sr/distill_x2_cpu/test_best.json
# The slim student trained without a teacher (same budget): the baseline for the distillation run.
if [ ! -f runs/sr/mdbn_small_x2_cpu/test_best.json ]; then
  $SK sr train --config configs/sr/mdbn_small_x2_cpu.yaml --set progress=false
  $SK sr test --model mdbn --weights runs/sr/mdbn_small_x2_cpu/best.safetensors --scale 2 --data $SETS \
    --out runs/sr/mdbn_small_x2_cpu/test_best.json
fi
echo "== small baseline done $(date)"
echo "== memory benchmark 2048 $(date)"
.venv/bin/python benchmarks/bench_sr.py --skip-speed --mem-size 2048 > runs/sr/bench_mem_2048.txt 2>&1
echo "== all done $(date)"
