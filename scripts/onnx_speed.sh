#!/usr/bin/env bash
# predict.py through onnxruntime (export.py onnx, fp32 and int8) against the torch path, on this
# machine (docs/gis.md): do the classes agree, and how long does a big tile take?
#   bash scripts/onnx_speed.sh            (WORK default /tmp/onnx-speed; RESULTS default results)
# 1. a model: the report's final recipe on the synthetic scenes (10 clicks per class, 5 epochs);
# 2. its ONNX exports: fp32, and int8 calibrated on 20 synthetic training scenes;
# 3. agreement: each path's classes on the 60 synthetic test scenes against the torch fp32 path's
#    and against the dense masks (mIoU), and on a 4000² tile;
# 4. speed: farm-bench, 3 runs of each command in turn, on the 4000² PNG tile and on a 4000²
#    3-band GeoTIFF scene (block by block).
# Writes RESULTS/gis/onnx-speed.log, headed by date, machine and command. A smoke test:
# SIZE=256 TRAIN="--epochs 1 --train-size 8" RESULTS=/tmp/r bash scripts/onnx_speed.sh
set -euo pipefail
# the timing needs farm-bench (a benchmark runner: commands in turn, medians); said before any work
command -v farm-bench > /dev/null || {
  echo "onnx_speed.sh: error: farm-bench not found on PATH: it times step 4 (install it, or run steps 1-3 by hand)" >&2
  exit 2
}
WORK=${WORK:-/tmp/onnx-speed} RESULTS=${RESULTS:-results} PYTHON=${PYTHON:-python} SIZE=${SIZE:-4000}
log=$RESULTS/gis/onnx-speed.log
mkdir -p "$WORK" "$RESULTS/gis"
cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | xargs)
flags=$(grep -owE "amx_bf16|avx512_bf16|avx512_vnni|avx_vnni" /proc/cpuinfo | sort -u | xargs || true)
{ echo "# $(date -u "+%Y-%m-%d %H:%M UTC"), $cpu (${flags:-no AMX, AVX512-BF16 or VNNI}), $(nproc --all) cores; torch $($PYTHON -c 'import torch; print(torch.__version__)'), onnxruntime $($PYTHON -c 'import onnxruntime; print(onnxruntime.__version__)')"
  echo "\$ bash scripts/onnx_speed.sh"; } > "$log"
say() { echo "$@" | tee -a "$log"; }

[ -f "$WORK/run/model.pt" ] || $PYTHON train.py --points-per-class 10 ${TRAIN:-} --out "$WORK/run" > "$WORK/train.log"
[ -d "$WORK/scenes" ] || $PYTHON export.py tiles "$WORK/scenes" --train-size 20 --val-size 0 > /dev/null
[ -d "$WORK/big" ] || $PYTHON export.py tiles "$WORK/big" --train-size 0 --val-size 0 --test-size 1 --image-size "$SIZE" > /dev/null
[ -f "$WORK/scene.tif" ] || $PYTHON export.py scene "$WORK/scene.tif" --size "$SIZE" --bands 3 > /dev/null
say "model: $(grep '^test mIoU' "$WORK/train.log" 2>/dev/null || echo "$WORK/run")"
rm -f "$WORK"/*.onnx
$PYTHON export.py onnx "$WORK/run/model.pt" "$WORK/fp32.onnx" --resolution 1000 --fp32 | tee -a "$log"
$PYTHON export.py onnx "$WORK/run/model.pt" "$WORK/int8.onnx" --resolution 1000 \
  --int8 "$WORK/scenes/train/images" 2>/dev/null | tee -a "$log"

declare -A model=([torch-fp32]="$WORK/run/model.pt --precision fp32" [torch-auto]="$WORK/run/model.pt"
                  [onnx-fp32]="$WORK/fp32.onnx" [onnx-int8]="$WORK/int8.onnx")
for path in torch-fp32 torch-auto onnx-fp32 onnx-int8; do
  for input in scenes/test/images big/test/images; do
    rm -rf "$WORK/out-$path-${input%%/*}"
    $PYTHON predict.py ${model[$path]} "$WORK/$input" --out "$WORK/out-$path-${input%%/*}" > /dev/null
  done
done
$PYTHON - "$WORK" "$SIZE" <<'PY' | tee -a "$log"
import sys
from pathlib import Path
import numpy as np
from PIL import Image
work = Path(sys.argv[1])
read = lambda p: np.array(Image.open(p))
masks = sorted((work / "scenes/test/masks").glob("*.png"))
print(f"path         same classes as torch fp32 (60 scenes; {sys.argv[2]}² tile)   test mIoU (60 scenes)")
for path in ("torch-fp32", "torch-auto", "onnx-fp32", "onnx-int8"):
    same, matrix = [], np.zeros((5, 5), np.int64)
    for m in masks:
        got = read(work / f"out-{path}-scenes/{m.stem}_classes.png")
        same.append(got == read(work / f"out-torch-fp32-scenes/{m.stem}_classes.png"))
        np.add.at(matrix, (read(m).ravel(), got.ravel()), 1)
    big = [read(work / f"out-{p}-big/scene_0000_classes.png") for p in (path, "torch-fp32")]
    iou = np.diag(matrix) / (matrix.sum(0) + matrix.sum(1) - np.diag(matrix))
    print(f"{path:12} {np.mean(same):.4%}; {np.mean(big[0] == big[1]):.4%}{'':28} {iou.mean():.4f}")
PY

bench() {  # bench A B INPUT: farm-bench, A against B, 3 runs each in turn
  say "\$ farm-bench -n 3 --warmup 0 --vs 'python predict.py ${model[$2]} $3' -- python predict.py ${model[$1]} $3"
  farm-bench -n 3 --warmup 0 --timeout 1500 --vs "$PYTHON predict.py ${model[$2]} $WORK/$3 --out $WORK/b" \
    -- $PYTHON predict.py ${model[$1]} "$WORK/$3" --out "$WORK/b" 2>&1 | tee -a "$log"
}
bench onnx-fp32 torch-fp32 big/test/images/scene_0000.png
bench onnx-int8 torch-auto big/test/images/scene_0000.png
bench onnx-int8 torch-auto scene.tif
