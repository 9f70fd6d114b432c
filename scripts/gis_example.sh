#!/usr/bin/env bash
# The GIS worked example (docs/gis.md): the synthetic scenes as GeoTIFFs on a map, a point layer
# of clicks and one of reference points beside them (lon/lat), a run trained from the layer and
# scored twice on the same test tiles: on their dense masks, and on the reference points alone
# (a copy of the folder without masks). Then the map as polygons.
#   bash scripts/gis_example.sh            (RESULTS default results, PYTHON default python)
# Writes geo/ and geo-points/ (tiles, gitignored) and RESULTS/gis/{dense-masks,reference-points}/
# {train.log,metrics.json}, RESULTS/gis/polygons.txt (fio info of the polygons written).
set -euo pipefail
RESULTS=${RESULTS:-results} PYTHON=${PYTHON:-python} FIO=${FIO:-fio}
machine="$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; torch $($PYTHON -c 'import torch; print(torch.__version__)')"
flags="--augment hflip --epochs 5 --no-tta --prior-shift 0 --average-last 0 --forest-weight 0 --tile-prior 0"   # the report's recipe: the example is about scoring, not mIoU

logged() {   # logged FOLDER COMMAND...
  folder=$1; shift
  mkdir -p "$folder"
  { echo "# $(date -u "+%Y-%m-%d %H:%M UTC"), $machine"; echo "\$ python $* --out $folder"; } > "$folder/train.log"
  PYTHONUNBUFFERED=1 $PYTHON "$@" --out "$folder" >> "$folder/train.log" 2>&1 || { echo "$folder: failed, see $folder/train.log" >&2; exit 1; }
  echo "$folder: $(grep -h '^test mIoU' "$folder/train.log")"
}

rm -rf geo geo-points
$PYTHON export.py tiles geo --format tif
$PYTHON export.py layers geo --points-per-class 10 --reference-points 50
cp -r geo geo-points && rm -r geo-points/train/masks geo-points/test/masks    # val keeps its masks: the same best epoch
logged "$RESULTS/gis/dense-masks" train.py --data geo --points-file geo/clicks.gpkg $flags
logged "$RESULTS/gis/reference-points" train.py --data geo-points --points-file geo/clicks.gpkg geo/reference.gpkg $flags
$PYTHON predict.py "$RESULTS/gis/reference-points/model.pt" geo/test/images/scene_0000.tif --polygons --min-area 500 --out geo-maps > /dev/null
{ echo "\$ fio info geo-maps/scene_0000_polygons.gpkg --indent 1"; $FIO info geo-maps/scene_0000_polygons.gpkg --indent 1; } > "$RESULTS/gis/polygons.txt"
cat "$RESULTS/gis/polygons.txt"
