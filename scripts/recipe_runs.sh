#!/usr/bin/env bash
# The runs behind the tile recipe's ablation (docs/recipe.md): on each set, the report's recipe,
# each lever of the tile recipe alone and all together, plus the dense and CRF runs that the
# results page compares with; on the synthetic scenes, the tile recipe beside the report's.
#   bash scripts/recipe_runs.sh dronedeploy dubai synthetic
# Each run writes RESULTS/<set>/<name>[-seedN]/{train.log,metrics.json} (RESULTS default
# results), its log headed by date, machine and command and ended by wall time and peak memory.
# PARALLEL=N runs N at once (one GPU is idle between a small model's steps: several runs fill it);
# EXTRA="FLAGS" adds flags to every run (a smoke test: EXTRA="--epochs 1 --crops-per-epoch 16 "),
# DEADLINE=S stops whatever is still running after S seconds (its folder then has no metrics.json).
# The tile folders come from scripts/prepare_data.sh.
set -uo pipefail
RESULTS=${RESULTS:-results}
PYTHON=${PYTHON:-python}
[ $# -gt 0 ] || { echo "usage: bash scripts/recipe_runs.sh dronedeploy|dubai|synthetic ..." >&2; exit 2; }

gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | xargs)
export MACHINE="${gpu:-no GPU}, $(nproc)-core CPU ($cpu); torch $($PYTHON -c 'import torch; print(torch.__version__)')"
export RESULTS PYTHON

seeds() {   # seeds SET: 3 seeds, 1 on Dubai (its runs are the longest)
  case $1 in
    dronedeploy|synthetic) echo 0 1 2 ;;
    dubai) echo 0 ;;
    *) echo "recipe_runs.sh: error: unknown set $1 (use dronedeploy, dubai or synthetic)" >&2; return 2 ;;
  esac
}

run_list() {   # one line per run, the ablation's first: its folder, then train.py's flags
  # the tile recipe of docs/recipe.md: --data's defaults without what docs/unclicked.md added
  tile="--epochs 10 --prior-shift 0 --tta-zoom-out 1 --average-last 0 --forest-weight 0 --tile-prior 0"
  for set in "$@"; do
    seeds "$set" > /dev/null || return 2
    [ "$set" = synthetic ] || [ -d "$set" ] || { echo "recipe_runs.sh: error: $set/ not found (scripts/prepare_data.sh makes it)" >&2; return 2; }
    for seed in $(seeds "$set") ; do
      suffix=$([ "$seed" = 0 ] || echo "-seed$seed")
      if [ "$set" = synthetic ]; then
        echo "$set/tile-recipe-points-per-class-10$suffix --points-per-class 10 --augment dihedral --epochs 10 --tta --seed $seed"
      else
        echo "$set/points-per-class-10$suffix --data $set --points-per-class 10 $tile --seed $seed"
        echo "$set/recipe-hflip-5ep-points-per-class-10$suffix --data $set --points-per-class 10 $tile --augment hflip --epochs 5 --seed $seed"
        echo "$set/recipe-dihedral-5ep-points-per-class-10$suffix --data $set --points-per-class 10 $tile --epochs 5 --seed $seed"
        echo "$set/recipe-hflip-10ep-points-per-class-10$suffix --data $set --points-per-class 10 $tile --augment hflip --seed $seed"
      fi
    done
  done
  for set in "$@"; do                # the comparisons on the results page, under the tile recipe too
    for seed in $(seeds "$set"); do
      suffix=$([ "$seed" = 0 ] || echo "-seed$seed")
      case $set in
        dronedeploy) echo "$set/dense$suffix --data $set --dense $tile --seed $seed"
                     echo "$set/points-per-class-10-crf$suffix --data $set --points-per-class 10 $tile --loss pce+crf --seed $seed" ;;
        dubai) echo "$set/dense$suffix --data $set --dense $tile --seed $seed" ;;
      esac
    done
  done
}

run_one() {   # run_one FOLDER FLAGS...: one logged, timed train.py run
  folder=$RESULTS/$1; shift
  mkdir -p "$folder" && rm -f "$folder/metrics.json"
  { echo "# $(date -u "+%Y-%m-%d %H:%M UTC"), $MACHINE"; echo "\$ python train.py $* ${EXTRA:+$EXTRA }--out $folder"; } > "$folder/train.log"
  PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} $PYTHON - train.py "$@" ${EXTRA:-} --out "$folder" >> "$folder/train.log" 2>&1 <<'EOF'
import resource, subprocess, sys, time          # GNU time's two lines, where /usr/bin/time is missing
start = time.time()
code = subprocess.call([sys.executable] + sys.argv[1:])
minutes, seconds = divmod(time.time() - start, 60)
print(f"\tElapsed (wall clock) time (h:mm:ss or m:ss): {int(minutes)}:{seconds:05.2f}")
print(f"\tMaximum resident set size (kbytes): {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
print(f"exit {code}")
EOF
  echo "$(date -u +%H:%M:%S) $folder: $(grep -h '^test mIoU' "$folder/train.log" || echo failed, see "$folder/train.log")"
}
export -f run_one

list=$(run_list "$@") || exit 2
echo "$(echo "$list" | wc -l) runs, ${PARALLEL:-1} at a time; $MACHINE"
echo "$list" | timeout -s INT "${DEADLINE:-infinity}" xargs -P "${PARALLEL:-1}" -I{} bash -c 'run_one {}'
echo "done: $(ls "$RESULTS"/*/*/metrics.json 2>/dev/null | wc -l) metrics.json under $RESULTS"
