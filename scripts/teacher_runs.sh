#!/usr/bin/env bash
# Two more levers of the tile recipe, measured on the validation split (docs/recipe.md): another
# model's dense labels as extra, down-weighted targets (train.py --extra-targets).
#   - forest targets: the pixel forest's class map of every training tile (baseline.py --predict-train);
#   - self-training: the tile recipe's own confident pixels, top class >= 0.9 (predict.py --min-confidence).
# Both beside the tile recipe alone, all on this machine:
#   bash scripts/teacher_runs.sh dronedeploy 0        (SET: a folder from scripts/prepare_data.sh; SEED)
#   NAME=synthetic bash scripts/teacher_runs.sh scenes 0   (the synthetic scenes as a folder: python export.py tiles scenes)
# Writes RESULTS/<set>/teachers/{tile-recipe,forest,forest-targets,self-training}[-seedN]/, each with
# its log (headed by date, machine and command) and metrics.json. A step whose metrics.json exists
# is skipped and one that left train.py's resume.pt is resumed, so an interrupted sequence picks up
# where it stopped. LEVERS="forest" (default "forest self") runs only the forest's targets beside
# the tile recipe. PARALLEL=2 runs the forest's branch (forest, then its targets) beside the tile
# recipe's (tile recipe, then self-training), for a GPU that one run leaves idle; EXTRA="FLAGS"
# adds flags to every train.py run (a smoke test: EXTRA="--epochs 1 --crops-per-epoch 16").
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: bash scripts/teacher_runs.sh SET SEED" >&2; exit 2; }
set_=$1 seed=$2 RESULTS=${RESULTS:-results} PYTHON=${PYTHON:-python}
[ -d "$set_" ] || { echo "teacher_runs.sh: error: $set_/ not found (scripts/prepare_data.sh makes it)" >&2; exit 2; }
runs=$RESULTS/${NAME:-$(basename "$set_")}/teachers suffix=$([ "$seed" = 0 ] || echo "-seed$seed")
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || true)
machine="${gpu:+$gpu, }$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc --all) cores; torch $($PYTHON -c 'import torch; print(torch.__version__)')"
labels="--data $set_ --points-per-class 10 --epochs 10 --prior-shift 0 --tta-zoom-out 1 --average-last 0 --forest-weight 0 --tile-prior 0 --seed $seed"   # the tile recipe

step() {   # step FOLDER SCRIPT FLAGS...: one logged run of SCRIPT, skipped if FOLDER has its metrics.json,
           # resumed (train.py --resume, the log appended to) if an interrupted one left its state there
  folder=$1; shift
  [ -f "$folder/metrics.json" ] && { echo "$folder: done before, skipped"; return 0; }
  mkdir -p "$folder"
  if [ -f "$folder/resume.pt" ]; then set -- "$@" --resume; else : > "$folder/run.log"; fi
  { echo "# $(date -u "+%Y-%m-%d %H:%M UTC"), $machine"; echo "\$ python $* --out $folder"; } >> "$folder/run.log"
  PYTHONUNBUFFERED=1 $PYTHON "$@" --out "$folder" >> "$folder/run.log" 2>&1 || { echo "$folder: failed, see $folder/run.log" >&2; exit 1; }
  echo "$(date -u +%H:%M:%S) $folder: $(grep -h '^test mIoU' "$folder/run.log")"
}

forest_branch() {
  step "$runs/forest$suffix" baseline.py $labels --predict-train
  step "$runs/forest-targets$suffix" train.py $labels ${EXTRA:-} --extra-targets "$runs/forest$suffix/train-predictions"
}
recipe_branch() {   # the tile recipe, then (LEVERS has "self") self-training on its confident pixels
  step "$runs/tile-recipe$suffix" train.py $labels ${EXTRA:-}
  [[ " ${LEVERS:-forest self} " == *" self "* ]] || return 0
  confident=$runs/tile-recipe$suffix/confident-train
  [ -d "$confident" ] || { $PYTHON predict.py "$runs/tile-recipe$suffix/model.pt" "$set_/train/images" --min-confidence 0.9 \
                             --out "$confident.tmp" > "$runs/tile-recipe$suffix/predict-train.log" && mv "$confident.tmp" "$confident"; }
  step "$runs/self-training$suffix" train.py $labels ${EXTRA:-} --extra-targets "$confident"
}

if [ "${PARALLEL:-1}" = 2 ]; then
  forest_branch & forest=$!
  recipe_branch & recipe=$!
  wait $forest || failed=1
  wait $recipe || failed=1
  exit ${failed:-0}
else
  recipe_branch && forest_branch
fi
