"""GIS layers out: clicks, suggest.py's proposals and predicted classes as layers a GIS opens.

`write_points` and `write_proposals` put a point at the centre of each pixel, reprojected from its
GeoTIFF tile's CRS; `write_polygons` turns a class raster into polygons with a class name, block
by block, so a scene of any size fits in memory. The reading side is lib/vector.py.
"""

from pathlib import Path

import fiona
import numpy as np
import rasterio
from rasterio import features, warp

from data import IGNORE


def write_points(path, tiles_and_clicks, classes, crs="EPSG:4326", driver="GPKG"):
    """A point layer of the clicks of GeoTIFF tiles: for each (tile path, Clicks), a point at the
    centre of each clicked pixel, reprojected to `crs` (lon/lat by default), with its class name."""
    write_pixel_points(
        path,
        {"class": "str"},
        crs,
        driver,
        (
            (tile, clicks.rows, clicks.cols, [{"class": classes[k]} for k in clicks.classes])
            for tile, clicks in tiles_and_clicks
        ),
    )


def write_proposals(path, tile_proposals, classes, crs):
    """suggest.py's proposals as a point layer for a GIS, in `crs`: for each (tile path, [(y, x,
    predicted class, margin)]), a point with an empty `class` for the person to fill in, the
    model's guess (`predicted`), its `margin` and the `tile`. Filled in, it is a layer of clicks
    like any other (train.py --points-file)."""
    schema = {"class": "str", "predicted": "str", "margin": "float", "tile": "str"}
    write_pixel_points(
        path,
        schema,
        crs,
        "GPKG",
        (
            (
                tile,
                [p[0] for p in points],
                [p[1] for p in points],
                [
                    {
                        "class": None,
                        "predicted": classes[k],
                        "margin": round(m, 4),
                        "tile": Path(tile).stem,
                    }
                    for _, _, k, m in points
                ],
            )
            for tile, points in tile_proposals
        ),
    )


def write_pixel_points(path, fields, crs, driver, tiles_rows_cols_properties):
    """A point at the centre of each pixel (row, col) of each GeoTIFF tile, in `crs`, with its
    properties."""
    with fiona.open(
        path,
        "w",
        driver=driver,
        crs=crs,
        schema={"geometry": "Point", "properties": fields},
        layer="points",
    ) as layer:
        for tile, rows, cols, properties in tiles_rows_cols_properties:
            with rasterio.open(tile) as raster:
                xs, ys = raster.transform @ (np.asarray(cols) + 0.5, np.asarray(rows) + 0.5)
                xs, ys = warp.transform(raster.crs, crs, list(xs), list(ys))
            layer.writerecords(
                {"geometry": {"type": "Point", "coordinates": (x, y)}, "properties": p}
                for x, y, p in zip(xs, ys, properties)
            )


def write_polygons(path, raster_path, classes, min_area=0.0, block=2048):
    """The class raster at `raster_path` as polygons with a `class` name attribute, in its CRS, to a
    GeoPackage at `path`, block by block (rasterio.features.shapes), so a scene of any size fits in
    memory; polygons are cut at block edges. With min_area (map units²) smaller patches are first
    merged into their neighbours (rasterio.features.sieve, within each block)."""
    with rasterio.open(raster_path) as raster:
        pixel_area = abs(
            raster.transform.a * raster.transform.e - raster.transform.b * raster.transform.d
        )
        size = int(min_area // pixel_area) if min_area else 0
        schema = {"geometry": "Polygon", "properties": {"class": "str", "code": "int"}}
        with fiona.open(
            path, "w", driver="GPKG", crs=raster.crs, schema=schema, layer="classes"
        ) as out:
            for row in range(0, raster.height, block):
                for col in range(0, raster.width, block):
                    window = rasterio.windows.Window(
                        col, row, min(block, raster.width - col), min(block, raster.height - row)
                    )
                    class_map = raster.read(1, window=window)
                    if size > 1:
                        class_map = features.sieve(class_map, size=size, connectivity=4)
                    shapes = features.shapes(
                        class_map,
                        mask=class_map != IGNORE,
                        connectivity=4,
                        transform=raster.window_transform(window),
                    )
                    out.writerecords(
                        {
                            "geometry": geometry,
                            "properties": {"class": classes[int(value)], "code": int(value)},
                        }
                        for geometry, value in shapes
                    )
