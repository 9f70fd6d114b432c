#!/usr/bin/env bash
# One run of the report's setting, 2 epochs, as 1 process x 2 threads and under torchrun as
# 2 processes x 1 thread, on this machine (docs/distributed.md):
#   bash scripts/distributed_check.sh
# Writes RESULTS/distributed/{one-process,two-processes}/{train.log,metrics.json} (RESULTS default
# results), each log headed by date, machine and command; reporting/page.py renders them side by side.
set -euo pipefail
RESULTS=${RESULTS:-results} PYTHON=${PYTHON:-python}
machine="$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; torch $($PYTHON -c 'import torch; print(torch.__version__)')"
flags="--points 200 --epochs 2"

logged() {   # logged FOLDER COMMAND...
  folder=$1; shift
  mkdir -p "$folder"
  { echo "# $(date -u "+%Y-%m-%d %H:%M UTC"), $machine"; echo "\$ $* --out $folder"; } > "$folder/train.log"
  PYTHONUNBUFFERED=1 "$@" --out "$folder" >> "$folder/train.log" 2>&1 || { echo "$folder: failed, see $folder/train.log" >&2; exit 1; }
  echo "$folder: $(grep -h '^test mIoU' "$folder/train.log")"
}

OMP_NUM_THREADS=2 logged "$RESULTS/distributed/one-process" $PYTHON train.py $flags
OMP_NUM_THREADS=1 logged "$RESULTS/distributed/two-processes" \
  $PYTHON -m torch.distributed.run --standalone --nproc_per_node 2 train.py $flags
