#!/usr/bin/env bash
# The DroneDeploy sample as a tile folder: 260 RGB chips of 300x300 px cut from two drone
# orthophotos (~10 cm/px), 6 classes, masks storing class index x 40 as grey RGB (so classes.txt
# lists those greys as colours). Every split takes chips of both scenes: every 5th chip of each
# scene is test, every 10th (from the second) val, the rest train: 180 / 27 / 53 chips.
#   bash scripts/prepare_dronedeploy.sh SOURCE [DEST]
# SOURCE: a checkout of the public repository aqbewtra/Multi-Class-Aerial-Segmentation at commit
# 7a533e7da07d39728e59f2fcf37e50fa86331708; DEST: the folder to make (default dronedeploy).
set -euo pipefail
src="$1/data/dataset-sample"
dest="${2:-dronedeploy}"
[ -d "$src/image-chips" ] || { echo "prepare_dronedeploy.sh: error: $src/image-chips not found" >&2; exit 2; }
[ -e "$dest" ] && { echo "prepare_dronedeploy.sh: error: $dest exists; give a new folder" >&2; exit 2; }
mkdir "$dest"
printf '%s\n' 'Building #000000' 'Clutter #282828' 'Vegetation #505050' 'Water #787878' 'Ground #A0A0A0' 'Car #C8C8C8' \
  > "$dest/classes.txt"
for scene in $(ls "$src/image-chips" | sed 's/-[0-9]*\.png$//' | sort -u); do
  i=0
  for chip in $(ls "$src/image-chips" | grep "^$scene-"); do
    split=train; [ $((i % 10)) = 1 ] && split=val; [ $((i % 5)) = 0 ] && split=test
    mkdir -p "$dest/$split/images" "$dest/$split/masks"
    cp "$src/image-chips/$chip" "$dest/$split/images/" && cp "$src/label-chips/$chip" "$dest/$split/masks/"
    i=$((i + 1))
  done
done
echo "$dest: $(ls "$dest"/train/images | wc -l) train / $(ls "$dest"/val/images | wc -l) val / $(ls "$dest"/test/images | wc -l) test chips"
