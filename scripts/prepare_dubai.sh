#!/usr/bin/env bash
# The Dubai aerial set of Humans in the Loop (public domain, CC0) as a tile folder: 72 satellite
# tiles from 509x544 to 2149x1479 px, 5 classes in colour PNG masks, plus an "unlabeled" grey and
# black pixels that no class has, both declared unknown with `ignore` lines. Every 4th tile is
# test, every 8th (from the second) val: 45 / 9 / 18 tiles.
#   bash scripts/prepare_dubai.sh SOURCE [DEST]
# SOURCE: a checkout of the public repository Kaarti22/satellite-imagery at commit
# 4943c52893442a9547e0f36fc69c354bd3244e95; DEST: the folder to make (default dubai).
set -euo pipefail
src="$1/Semantic segmentation dataset"
dest="${2:-dubai}"
[ -d "$src/Tile 1" ] || { echo "prepare_dubai.sh: error: $src/Tile 1 not found" >&2; exit 2; }
[ -e "$dest" ] && { echo "prepare_dubai.sh: error: $dest exists; give a new folder" >&2; exit 2; }
mkdir "$dest"
printf '%s\n' 'Building #3C1098' 'Land #8429F6' 'Road #6EC1E4' 'Vegetation #FEDD3A' 'Water #E2A929' \
              'ignore #9B9B9B' 'ignore #000000' > "$dest/classes.txt"
i=0
for tile in 1 2 3 4 5 6 7 8; do
  for image in "$src/Tile $tile"/images/*.jpg; do
    stem=$(basename "$image" .jpg)
    split=train; [ $((i % 8)) = 1 ] && split=val; [ $((i % 4)) = 0 ] && split=test
    mkdir -p "$dest/$split/images" "$dest/$split/masks"
    cp "$image" "$dest/$split/images/tile$tile-$stem.jpg"
    cp "$src/Tile $tile/masks/$stem.png" "$dest/$split/masks/tile$tile-$stem.png"
    i=$((i + 1))
  done
done
echo "$dest: $(ls "$dest"/train/images | wc -l) train / $(ls "$dest"/val/images | wc -l) val / $(ls "$dest"/test/images | wc -l) test tiles"
