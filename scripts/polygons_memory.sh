#!/usr/bin/env bash
# Peak memory of predict.py --polygons' polygon step on a 10,000² class map (docs/gis.md): a class
# raster made of 100 synthetic 1000² masks, then vector.write_polygons on it, with --min-area 500 m².
#   bash scripts/polygons_memory.sh        (PYTHON default python; RESULTS default results)
# Writes big-classes.tif and big-polygons.gpkg (gitignored) and RESULTS/gis/polygons-memory.log.
set -euo pipefail
RESULTS=${RESULTS:-results} PYTHON=${PYTHON:-python}
log=$RESULTS/gis/polygons-memory.log
mkdir -p "$RESULTS/gis"
rm -f big-polygons.gpkg
$PYTHON - <<'PY'
import itertools
import geotiff, export
from data import split_scene
def blocks():
    for k, (row, col) in enumerate(itertools.product(range(0, 10_000, 1000), repeat=2)):
        yield row, col, split_scene("test", k, 0, 1000, 3)[1][None]
geotiff.write_blocks("big-classes.tif", 10_000, 10_000, 1, "uint8", export.EXAMPLE_CRS,
                     export.from_origin(500_000, 5_000_000, export.EXAMPLE_PIXEL, export.EXAMPLE_PIXEL), blocks())
PY
command="import vector, data; vector.write_polygons('big-polygons.gpkg', 'big-classes.tif', data.CLASSES, min_area=500)"
{ echo "# $(date -u "+%Y-%m-%d %H:%M UTC"), $(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
  echo "\$ python -c \"$command\"   # the polygon step of predict.py --polygons on a 10,000² class map"; } > "$log"
$PYTHON - "$command" >> "$log" 2>&1 <<'PY'
import resource, subprocess, sys, time          # GNU time's two lines, where /usr/bin/time is missing
start = time.time()
code = subprocess.call([sys.executable, "-c", sys.argv[1]])
minutes, seconds = divmod(time.time() - start, 60)
print(f"\tElapsed (wall clock) time (h:mm:ss or m:ss): {int(minutes)}:{seconds:05.2f}")
print(f"\tMaximum resident set size (kbytes): {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
print(f"exit {code}")
PY
$PYTHON -c "import fiona; f = fiona.open('big-polygons.gpkg'); print(f'{len(f)} polygons in big-polygons.gpkg, CRS {f.crs}')" >> "$log"
cat "$log"
