#!/usr/bin/env bash
# A public real data set arranged as a tile folder for `train.py --data` (docs/own-data.md).
#   bash scripts/prepare_data.sh dronedeploy SOURCE [DEST]
#   bash scripts/prepare_data.sh dubai SOURCE [DEST]
#   bash scripts/prepare_data.sh gid5 SOURCE [DEST]      # and gid15
# SOURCE is a checkout of the set's public repository at the commit docs/own-data.md names;
# DEST the folder to make (default: the set's name). The imagery is never committed here.
set -euo pipefail
set_name="${1:-}"
source_dir="${2:-}"
dest="${3:-$set_name}"
fail() { echo "prepare_data.sh: error: $*" >&2; exit 2; }
[ -n "$source_dir" ] || fail "usage: bash scripts/prepare_data.sh dronedeploy|dubai|gid5|gid15 SOURCE [DEST]"
[ -e "$dest" ] && fail "$dest exists; give a new folder"

put() {  # put SPLIT IMAGE MASK NAME: one tile into DEST/SPLIT/{images,masks}
  mkdir -p "$dest/$1/images" "$dest/$1/masks"
  cp "$2" "$dest/$1/images/$4.${2##*.}" && cp "$3" "$dest/$1/masks/$4.${3##*.}"
}

case "$set_name" in
  dronedeploy)
    # 260 RGB chips of 300x300 px from two drone orthophotos (~10 cm/px), 6 classes; the masks store
    # class index x 40 as grey RGB, so classes.txt lists those greys as colours. Every split takes
    # chips of both scenes: every 5th chip of each scene is test, every 10th (from the second) val.
    src="$source_dir/data/dataset-sample"
    [ -d "$src/image-chips" ] || fail "$src/image-chips not found"
    mkdir "$dest"
    printf '%s\n' 'Building #000000' 'Clutter #282828' 'Vegetation #505050' 'Water #787878' 'Ground #A0A0A0' \
                  'Car #C8C8C8' > "$dest/classes.txt"
    for scene in $(ls "$src/image-chips" | sed 's/-[0-9]*\.png$//' | sort -u); do
      i=0
      for chip in $(ls "$src/image-chips" | grep "^$scene-"); do
        split=train; [ $((i % 10)) = 1 ] && split=val; [ $((i % 5)) = 0 ] && split=test
        put $split "$src/image-chips/$chip" "$src/label-chips/$chip" "${chip%.png}"
        i=$((i + 1))
      done
    done ;;
  dubai)
    # 72 satellite tiles of Dubai (509x544 to 2149x1479 px), 5 classes in colour PNG masks, plus an
    # "unlabeled" grey and black pixels that no class has: both are `ignore` lines. Every 4th tile is
    # test, every 8th (from the second) val.
    src="$source_dir/Semantic segmentation dataset"
    [ -d "$src/Tile 1" ] || fail "$src/Tile 1 not found"
    mkdir "$dest"
    printf '%s\n' 'Building #3C1098' 'Land #8429F6' 'Road #6EC1E4' 'Vegetation #FEDD3A' 'Water #E2A929' \
                  'ignore #9B9B9B' 'ignore #000000' > "$dest/classes.txt"
    i=0
    for tile in 1 2 3 4 5 6 7 8; do
      for image in "$src/Tile $tile"/images/*.jpg; do
        stem=$(basename "$image" .jpg)
        split=train; [ $((i % 8)) = 1 ] && split=val; [ $((i % 4)) = 0 ] && split=test
        put $split "$image" "$src/Tile $tile/masks/$stem.png" "tile$tile-$stem"
        i=$((i + 1))
      done
    done ;;
  gid5|gid15)
    # GID-MTL (Zheng et al. 2021): 224x224 RGB crops of Gaofen-2 satellite scenes over China (4 m/px,
    # Tong et al. 2020), filed by the scene class each crop shows; grey TIFF masks hold the class
    # index, the last value "undefined". GID-MTL5 has 1391 crops of 5 classes, GID-MTL15 767 of 15.
    # The crops' numbers run through the source scenes (neighbouring numbers look alike: the colour
    # statistics of crops n and n+1 differ half as much as a random pair's), so each scene class is
    # split in blocks of numbers, not every k-th crop: the first 70% train, the next 15% val, the
    # rest test. Only the edges of the blocks can share a source scene.
    src="$source_dir/GID-MTL${set_name#gid}"
    [ -d "$src/image" ] || fail "$src/image not found"
    mkdir "$dest"
    if [ "$set_name" = gid5 ]; then
      printf '%s\n' 'Built-up 0' 'Farmland 1' 'Forest 2' 'Meadow 3' 'Water 4' 'ignore 5' > "$dest/classes.txt"
    else
      printf '%s\n' 'Industrial land 0' 'Urban residential 1' 'Rural residential 2' 'Traffic land 3' \
                    'Paddy field 4' 'Irrigated land 5' 'Dry cropland 6' 'Garden plot 7' 'Arbor woodland 8' \
                    'Shrub land 9' 'Natural grassland 10' 'Artificial grassland 11' 'River 12' 'Lake 13' \
                    'Pond 14' 'ignore 15' > "$dest/classes.txt"
    fi
    for scene in $(ls "$src/image"); do
      numbers=$(ls "$src/image/$scene" | sed 's/\.tif$//' | sort -n)
      n=$(echo "$numbers" | wc -l) i=0
      for number in $numbers; do
        split=train; [ $((i * 100)) -ge $((n * 70)) ] && split=val; [ $((i * 100)) -ge $((n * 85)) ] && split=test
        put $split "$src/image/$scene/$number.tif" "$src/label_gray/$scene/$number.tif" "$scene-$number"
        i=$((i + 1))
      done
    done ;;
  *) fail "unknown data set '$set_name': use dronedeploy, dubai, gid5 or gid15" ;;
esac
echo "$dest: $(ls "$dest"/train/images | wc -l) train / $(ls "$dest"/val/images | wc -l) val / $(ls "$dest"/test/images | wc -l) test tiles"
