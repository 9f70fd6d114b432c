#!/usr/bin/env bash
# What proposing clicks costs (docs/suggest.md): wall time and peak memory of suggest.py over a
# folder's training tiles, beside predict.py over the same tiles (the memory it should stay within).
#   bash scripts/suggest_cost.sh dronedeploy 200        (SET: a tile folder; CLICKS to propose)
#   bash scripts/suggest_cost.sh big80 200              (python export.py tiles big80 --train-size 5 \
#                                                        --val-size 1 --test-size 1 --image-size 4000)
# The model is a quick one (1 epoch of 16 crops, 2 clicks per class per tile): the cost is one pass
# of inference whatever the weights. It lives in runs/ (gitignored), and suggest.py writes into a
# copy of SET whose images and masks are links, so SET itself is left as it was.
# Writes RESULTS/suggest-cost/<set>.log: date, machine, each command and GNU time's figures.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: bash scripts/suggest_cost.sh SET CLICKS" >&2; exit 2; }
set_=${1%/} clicks=$2 RESULTS=${RESULTS:-results} PYTHON=${PYTHON:-python}
[ -d "$set_/train/images" ] || { echo "suggest_cost.sh: error: $set_/train/images not found" >&2; exit 2; }
name=$(basename "$set_") run=runs/suggest-cost-$(basename "$set_") work=runs/suggest-cost-$(basename "$set_")-folder
log=$RESULTS/suggest-cost/$name.log
mkdir -p "$RESULTS/suggest-cost" "$work/train/points"
[ -f "$run/model.pt" ] || $PYTHON train.py --data "$set_" --points-per-class 2 --epochs 1 --crops-per-epoch 16 \
                             --no-tta --prior-shift 0 --forest-weight 0 --tile-prior 0 --out "$run" > "$run.log" 2>&1 || { echo "quick model failed: $run.log" >&2; exit 1; }
cp "$set_/classes.txt" "$work/"
for part in images masks; do [ -e "$set_/train/$part" ] && ln -sfn "$(realpath "$set_/train/$part")" "$work/train/$part"; done
rm -f "$work"/train/points/*.csv
pixels=$($PYTHON -c "import sys, math, tiles; from pathlib import Path
print(sum(math.prod(tiles.read_image(p).shape[-2:]) for p in tiles.stems(Path(sys.argv[1]), tiles.IMAGE_SUFFIXES).values()))" "$set_/train/images")
{ echo "# $(date -u "+%Y-%m-%d %H:%M UTC"), $(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; torch $($PYTHON -c 'import torch; print(torch.__version__)')"
  echo "# $set_/train: $(ls "$set_/train/images" | wc -l) tiles, $pixels pixels"; } > "$log"
measure() {   # measure COMMAND...: one command's output and GNU time's figures, appended to the log
  echo "\$ python $*" >> "$log"
  /usr/bin/time -v $PYTHON "$@" >> "$log" 2>&1 || { echo "failed: see $log" >&2; exit 1; }
}
measure suggest.py "$run" "$work" --clicks "$clicks" --out "$work/suggestions"
measure predict.py "$run/model.pt" "$set_/train/images" --out "$work/predictions"
grep -E '^\$|proposals on|Elapsed|Maximum resident' "$log"
