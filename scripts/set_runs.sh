#!/usr/bin/env bash
# The pixel forest and the network's --data defaults on one real set, on the same clicks (10 random
# clicks per class), one seed after another:
#   bash scripts/set_runs.sh forest gid5 0 1 2       baseline.py
#   bash scripts/set_runs.sh network gid5 0         train.py with the --data defaults
# SET is a folder scripts/prepare_data.sh made. Writes RESULTS/<set>/forest-points-per-class-10[-seedN]
# and RESULTS/<set>/defaults[-seedN] (RESULTS default results), each with its log headed
# by date, machine and command, as the DroneDeploy and Dubai records are. A run whose metrics.json
# exists is skipped; a network run that left resume.pt is resumed. EXTRA="FLAGS" adds flags to every
# run (a smoke test: EXTRA="--epochs 1 --train-size 8").
set -euo pipefail
fail() { echo "set_runs.sh: error: $*" >&2; exit 2; }
[ $# -ge 3 ] || fail "usage: bash scripts/set_runs.sh forest|network SET SEED..."
what=$1 set_=$2; shift 2
[ "$what" = forest ] || [ "$what" = network ] || fail "'$what' is not forest or network"
[ -d "$set_" ] || fail "$set_/ not found (scripts/prepare_data.sh makes it)"
for seed in "$@"; do
  [[ "$seed" =~ ^[0-9]+$ ]] || fail "seed '$seed' is not a non-negative integer"
done
RESULTS=${RESULTS:-results} PYTHON=${PYTHON:-python} EXTRA=${EXTRA:-}
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || true)
cpu="$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc --all) cores"
threads=${OMP_NUM_THREADS:+, $OMP_NUM_THREADS thread(s)}

for seed in "$@"; do
  suffix=""; [ "$seed" = 0 ] || suffix="-seed$seed"
  if [ "$what" = forest ]; then
    out=$RESULTS/$(basename "$set_")/forest-points-per-class-10$suffix log=baseline.log
    command="$PYTHON baseline.py --data $set_ --points-per-class 10 --seed $seed --out $out $EXTRA"
  else
    out=$RESULTS/$(basename "$set_")/defaults$suffix log=train.log
    command="$PYTHON train.py --data $set_ --points-per-class 10 --seed $seed --out $out $EXTRA"
    [ -e "$out/resume.pt" ] && command="$command --resume"
  fi
  [ -e "$out/metrics.json" ] && { echo "$out: done, skipped"; continue; }
  mkdir -p "$out"
  {
    echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), ${gpu:+$gpu, }$cpu$threads; torch $($PYTHON -c 'import torch; print(torch.__version__)')"
    echo "\$ $command"
  } >> "$out/$log"
  echo "$out: running (log $out/$log)"
  $command >> "$out/$log" 2>&1
done
