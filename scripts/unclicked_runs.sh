#!/usr/bin/env bash
# Learning from the unclicked pixels (lib/teacher.py, docs/unclicked.md): each lever alone and all
# together, beside the tile recipe, on one set, 10 random clicks per class, on this machine:
#   bash scripts/unclicked_runs.sh synthetic 0 1 2        (SET: synthetic, or a folder of
#   bash scripts/unclicked_runs.sh dronedeploy 0           scripts/prepare_data.sh; then SEEDs)
# Writes RESULTS/<set>/unclicked/<lever>[-seedN]/{run.log,metrics.json} (RESULTS default results),
# each log headed by date, machine and command. A run whose metrics.json exists is skipped and one
# that left train.py's resume.pt is resumed, so an interrupted sequence picks up where it stopped.
# LEVERS="tile-recipe ema" runs only those; EXTRA="FLAGS" adds flags to every run (a smoke test:
# EXTRA="--epochs 1 --train-size 8").
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: bash scripts/unclicked_runs.sh SET SEED..." >&2; exit 2; }
set_=$1; shift
RESULTS=${RESULTS:-results} PYTHON=${PYTHON:-python}
if [ "$set_" = synthetic ]; then   # the synthetic scenes under the tile recipe
  labels="--points-per-class 10 --augment dihedral --epochs 10 --tta"
else
  [ -d "$set_" ] || { echo "unclicked_runs.sh: error: $set_/ not found (scripts/prepare_data.sh makes it)" >&2; exit 2; }
  # the tile recipe; a lever's --prior-shift shifts to EM's shares, as when these runs were made
  labels="--data $set_ --points-per-class 10 --epochs 10 --prior-shift 0 --prior-estimate em --tta-zoom-out 1 --average-last 0 --forest-weight 0 --tile-prior 0"
fi
runs=$RESULTS/$(basename "$set_")/unclicked
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || true)
machine="${gpu:+$gpu, }$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc --all) cores; torch $($PYTHON -c 'import torch; print(torch.__version__)')"

flags() {   # flags LEVER: what train.py adds to the tile recipe for it
  case $1 in
    tile-recipe) echo "" ;;
    class-balanced) echo "--class-balanced" ;;
    ema) echo "--ema" ;;
    consistency) echo "--consistency 1" ;;
    grow) echo "--grow" ;;
    all) echo "--ema --consistency 1 --grow" ;;
    epochs-13) echo "--epochs 13" ;;   # a longer run, within 1.5x the tile recipe's wall time
    consistency-epochs-13) echo "--consistency 1 --epochs 13" ;;
    epochs-15) echo "--epochs 15" ;;   # 1.5x the epochs: the wall-time cap
    batch-4) echo "--batch-size 4" ;;   # twice the steps on the same crops
    lr-3e-3) echo "--lr 3e-3" ;;
    image-skip) echo "--image-skip" ;;
    image-skip-epochs-15) echo "--image-skip --epochs 15" ;;
    paste-4) echo "--paste 4" ;;   # clicked boxes in other crops' context
    paste-4-image-skip-epochs-15) echo "--paste 4 --image-skip --epochs 15" ;;
    crf) echo "--loss pce+crf" ;;   # the regularised loss of lib/crf.py, its defaults
    paste-4-crf-image-skip-epochs-15) echo "--paste 4 --loss pce+crf --image-skip --epochs 15" ;;
    paste-4-epochs-15) echo "--paste 4 --epochs 15" ;;
    paste-8-crf-image-skip-epochs-15) echo "--paste 8 --loss pce+crf --image-skip --epochs 15" ;;
    paste-16-crf-image-skip-epochs-15) echo "--paste 16 --loss pce+crf --image-skip --epochs 15" ;;
    paste-32-crf-image-skip-epochs-15) echo "--paste 32 --loss pce+crf --image-skip --epochs 15" ;;
    size-256-epochs-15) echo "--image-size 256 --epochs 15" ;;   # crops of 256 px: 4x the context
    prior-0.5) echo "--prior-shift 0.5" ;;   # logits shifted halfway to the pixels' class shares
    prior-0.5-epochs-15) echo "--prior-shift 0.5 --epochs 15" ;;
    prior-0.5-paste-32-crf-image-skip-epochs-15) echo "--prior-shift 0.5 --paste 32 --loss pce+crf --image-skip --epochs 15" ;;
    zoom-2-prior-0.5-epochs-15) echo "--tta-zoom-out 2 --prior-shift 0.5 --epochs 15" ;;   # test tiles also seen shrunk 2x
    zoom-3-prior-0.5-epochs-15) echo "--tta-zoom-out 3 --prior-shift 0.5 --epochs 15" ;;   # ... shrunk 3x
    zoom-3-image-skip-prior-0.5-epochs-15) echo "--tta-zoom-out 3 --image-skip --prior-shift 0.5 --epochs 15" ;;   # the --data choice + the image
    train-zoom-2-zoom-2-prior-0.5-epochs-15) echo "--train-zoom-out 2 --tta-zoom-out 2 --prior-shift 0.5 --epochs 15" ;;   # ... and trained on
    zoom-2-prior-0.5-paste-32-crf-image-skip-epochs-15) echo "--tta-zoom-out 2 --prior-shift 0.5 --paste 32 --loss pce+crf --image-skip --epochs 15" ;;
    consistency-zoom-3-prior-0.5-epochs-15) echo "--consistency 1 --tta-zoom-out 3 --prior-shift 0.5 --epochs 15" ;;   # the --data choice + the strong view
    consistency-32-zoom-3-prior-0.5-epochs-15) echo "--consistency 1 --sure-per-class 32 --tta-zoom-out 3 --prior-shift 0.5 --epochs 15" ;;   # ... its sure pixels 32 a class and crop
    ema-0.999-prior-0.5-epochs-15) echo "--ema --ema-decay 0.999 --prior-shift 0.5 --epochs 15" ;;   # an average over ~2 of 15 epochs
    *) echo "unclicked_runs.sh: error: unknown lever $1" >&2; return 2 ;;
  esac
}

for seed in "$@"; do
  for lever in ${LEVERS:-tile-recipe ema consistency grow all}; do
    folder=$runs/$lever$([ "$seed" = 0 ] || echo "-seed$seed")
    [ -f "$folder/metrics.json" ] && { echo "$folder: done before, skipped"; continue; }
    args="train.py $labels --seed $seed $(flags "$lever") ${EXTRA:-}"
    mkdir -p "$folder"
    if [ -f "$folder/resume.pt" ]; then args="$args --resume"; else : > "$folder/run.log"; fi
    { echo "# $(date -u "+%Y-%m-%d %H:%M UTC"), $machine"; echo "\$ python $args --out $folder"; } >> "$folder/run.log"
    PYTHONUNBUFFERED=1 $PYTHON $args --out "$folder" >> "$folder/run.log" 2>&1 \
      || { echo "$folder: failed: $(tail -1 "$folder/run.log")" >&2; exit 1; }
    echo "$(date -u +%H:%M:%S) $folder: $(grep -h '^test mIoU' "$folder/run.log")"
  done
done
