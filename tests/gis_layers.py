"""The GIS side of the tests' tile folders: GeoTIFF tiles with their clicks as a point layer
(conftest's `georeferenced` fixture), and the helpers that write layers. Imported only by the
tests that need rasterio and fiona, so the core tests run without them."""

import shutil

import fiona
import numpy as np
import rasterio
from rasterio import warp

import export
from clicks import sample_points
from lib import annotations, rasters

LAYER_CRS = "EPSG:4326"  # the points in lon/lat, over tiles in UTM (export's EPSG:32632)
SCHEMA = {"geometry": "Point", "properties": {"class": "str"}}


def map_points(tile, clicks, crs=LAYER_CRS):
    """The map coordinates (in `crs`) of the centres of the clicked pixels of a GeoTIFF tile."""
    with rasterio.open(tile) as raster:
        xs, ys = raster.transform @ (clicks.cols + 0.5, clicks.rows + 0.5)
        return warp.transform(raster.crs, crs, list(xs), list(ys))


def write_layer(path, records, driver="GPKG", crs=LAYER_CRS, schema=SCHEMA):
    with fiona.open(path, "w", driver=driver, crs=crs, schema=schema) as layer:
        layer.writerecords(records)
    return path


def point(x, y, name):
    return dict(geometry=dict(type="Point", coordinates=(x, y)), properties={"class": name})


def georeferenced_tiles(base):
    """GeoTIFF tiles (4/2/2 of 64²) in UTM; their clicks (3 per class) as a lon/lat GeoPackage, the
    same clicks as per-tile pixel CSVs in a copy of the folder, and reference points on the test
    tiles."""
    root = base / "tiles"
    export.export_tiles(root, seed=0, sizes=(4, 2, 2), image_size=64, format="tif")
    legend, rng = annotations.read_legend(root), np.random.default_rng(0)
    clicks, reference, expected = [], [], {}
    for split, records in (("train", clicks), ("test", reference)):
        for tile in sorted((root / split / "images").glob("*.tif")):
            mask = rasters.read_mask(root / split / "masks" / tile.name, legend, (64, 64))
            chosen = sample_points(mask, rng, points_per_class=3)
            expected[split, tile.stem] = chosen
            records += [
                point(x, y, legend.names[k])
                for x, y, k in zip(*map_points(tile, chosen), chosen.classes)
            ]
    with_csvs = base / "csvs"
    shutil.copytree(root, with_csvs)
    for stem in ("scene_0000", "scene_0001", "scene_0002", "scene_0003"):
        (with_csvs / "train" / "points").mkdir(exist_ok=True)
        annotations.write_clicks(
            with_csvs / "train" / "points" / f"{stem}.csv", expected["train", stem], legend.names
        )
    return dict(
        root=root,
        csvs=with_csvs,
        legend=legend,
        expected=expected,
        gpkg=write_layer(base / "clicks.gpkg", clicks),
        clicks=clicks,
        reference=write_layer(base / "reference.gpkg", reference),
    )
