#!/bin/bash
# The warm round's schedule (train.py --init's defaults: epochs and learning rate), chosen on
# validation only (docs/suggest.md, Warm rounds). Needs a labelling loop's round 0 and its first
# proposals, labelled (python -m scripts.active ... made them: LOOP/start-seed<S>,
# LOOP/work/proposed-seed<S>).
#
#   bash scripts/warm_scan.sh results/active/dronedeploy-warm 0
#
# Each candidate trains warm from round 0 on round 1's clicks, in a workspace whose test split is
# the val split: the real test tiles are never scored here (their score comes once, for the
# schedule chosen, in the loop). Prints val mIoU (TTA) per candidate; the rule, set before the
# runs: the candidate of the highest val mIoU (TTA, in the view the start's val chose: a warm
# round's test view).
set -euo pipefail
LOOP=${1:?the loop folder}
SEED=${2:-0}
WORK=$LOOP/work/proposed-seed$SEED
SCAN=$LOOP/work/scan-seed$SEED
DATA=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['config']['data'])" "$LOOP/start-seed$SEED/metrics.json")
mkdir -p "$SCAN/train" "$LOOP/scan-seed$SEED"
cp "$DATA/classes.txt" "$SCAN/"
for part in images masks; do ln -sfn "$(realpath "$DATA/train/$part")" "$SCAN/train/$part"; done
rm -rf "$SCAN/train/points" && cp -r "$WORK/train/points" "$SCAN/train/points"
ln -sfn "$(realpath "$DATA/val")" "$SCAN/val"
ln -sfn "$(realpath "$DATA/val")" "$SCAN/test"  # val stands in for test: test stays unseen
for candidate in "1 0.0001" "1 0.0003" "1 0.001" "2 0.0003"; do
    set -- $candidate
    RUN=$LOOP/scan-seed$SEED/epochs-$1-lr-$2
    [ -f "$RUN/metrics.json" ] && continue
    mkdir -p "$RUN"
    python train.py --data "$SCAN" --seed "$SEED" --init "$LOOP/start-seed$SEED" --epochs "$1" \
        --lr "$2" --out "$RUN" > "$RUN/train.log" 2>&1
done
python - "$LOOP/scan-seed$SEED" <<'PY'
import json, sys
from pathlib import Path
for run in sorted(Path(sys.argv[1]).glob("epochs-*")):
    m = json.loads((run / "metrics.json").read_text())
    # val stands in for test: its score is val's
    print(f"{run.name:22s} val mIoU (TTA) {m['test']['miou']:.4f}  wall {m['wall_time_s']:.0f}s")
PY
