"""GeoTIFF in and out: rasters of any band count and dtype, and predictions that keep their place
on the map.

Remote-sensing imagery comes as GeoTIFF: Sentinel-2 and Landsat scenes are uint16 with 4-13
bands, orthophotos RGB or RGB+NIR, land-cover masks value-coded rasters, and each file carries a
coordinate reference system (CRS) and the transform from pixel to map coordinates. They are read
and written with rasterio (GDAL underneath, as torchgeo does): it reads any band count, dtype and
compression (deflate, LZW, ...), and reads and writes windows of a file, so a scene larger than
memory is segmented block by block. Pillow handles every other format (tiles.py).
"""
import itertools
import warnings

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from data import split_scene

SUFFIXES = (".tif", ".tiff")
BLOCK = 2048          # predict_scene works on BLOCK x BLOCK pieces of a scene, plus a margin of context
CACHE_MB = 64         # GDAL's block cache while doing so; its default, 5 % of the machine's memory,
                      # filled with a 10,000^2 scene's blocks: 0.68 GB more peak memory, measured
EXAMPLE_CRS = "EPSG:32632"       # tiles.py export --format tif places its scenes in UTM zone 32N ...
EXAMPLE_PIXEL = 10.0             # ... at 10 m per pixel, as Sentinel-2's visible and NIR bands


def example_transform(split_index, scene_index, size):
    """A made-up place on the map for exported scene `scene_index` of a split: side by side in a
    row, one row per split."""
    return from_origin(500_000 + scene_index * size * EXAMPLE_PIXEL, 5_000_000 - split_index * size * EXAMPLE_PIXEL,
                       EXAMPLE_PIXEL, EXAMPLE_PIXEL)


def is_geotiff(path):
    return path.suffix.lower() in SUFFIXES


def read(path, bands=None):
    """(bands, H, W) as stored, or (H, W) with bands=1 (a mask)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)   # a plain TIFF is fine
        with rasterio.open(path) as raster:
            return raster.read(bands)


def band_count(path):
    try:
        with rasterio.open(path) as raster:
            return raster.count
    except rasterio.errors.RasterioError as error:
        raise ValueError(f"{path}: cannot read image ({type(error).__name__}: {error})") from None


def predict_scene(path, predict, window, block=BLOCK):
    """Yield (row, col, class map) for BLOCK x BLOCK blocks covering the raster at `path`.
    `predict(pixels)` maps a (bands, h, w) array to (h, w) classes; each block is read with a
    margin of half a window of real context on every side where the scene has it, so the
    result does not depend on where the blocks fall, and only one block is in memory at a time."""
    margin = window // 2
    with rasterio.Env(GDAL_CACHEMAX=CACHE_MB), rasterio.open(path) as raster:
        for row in range(0, raster.height, block):
            for col in range(0, raster.width, block):
                top, left = max(row - margin, 0), max(col - margin, 0)
                bottom, right = min(row + block + margin, raster.height), min(col + block + margin, raster.width)
                classes = predict(raster.read(window=Window(left, top, right - left, bottom - top)))
                yield row, col, classes[row - top:min(row + block, raster.height) - top,
                                        col - left:min(col + block, raster.width) - left]


def write(path, array, crs, transform):
    """A (bands, H, W) array as a deflate-compressed GeoTIFF placed on the map by crs/transform."""
    with rasterio.open(path, "w", driver="GTiff", width=array.shape[2], height=array.shape[1], count=array.shape[0],
                       dtype=array.dtype, crs=crs, transform=transform, compress="deflate") as out:
        out.write(array)


def write_classes(path, like, blocks, colours=None):
    """A single-band uint8 class raster with the CRS and transform of the raster `like`, deflate-
    compressed and tiled, written block by block from (row, col, class map); the legend's colours
    become its colour table. Returns the whole class map (uint8), for the PNG preview."""
    with rasterio.open(like) as source:
        profile = dict(driver="GTiff", width=source.width, height=source.height, count=1, dtype="uint8",
                       crs=source.crs, transform=source.transform, compress="deflate", tiled=True,
                       blockxsize=256, blockysize=256)
    class_map = np.zeros((profile["height"], profile["width"]), np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.Env(GDAL_CACHEMAX=CACHE_MB), rasterio.open(path, "w", **profile) as out:
            for row, col, classes in blocks:
                out.write(classes, 1, window=Window(col, row, classes.shape[1], classes.shape[0]))
                class_map[row:row + classes.shape[0], col:col + classes.shape[1]] = classes
            if colours:
                out.write_colormap(1, {k: tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) + (255,)
                                       for k, c in enumerate(colours)})
    return class_map


def synthetic_scene(path, size, bands=4, seed=0, block=1000):
    """A size x size synthetic scene as a uint16 GeoTIFF, made and written block by block, so it
    can be far larger than memory: each block x block piece is one synthetic scene of the test
    split (values as the generator makes them, 0-255, in a 16-bit raster)."""
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=bands, dtype="uint16",
                       crs=EXAMPLE_CRS, transform=from_origin(500_000, 5_000_000, EXAMPLE_PIXEL, EXAMPLE_PIXEL),
                       compress="deflate", tiled=True, blockxsize=256, blockysize=256) as out:
        for k, (row, col) in enumerate(itertools.product(range(0, size, block), repeat=2)):
            image, _ = split_scene("test", k, seed, block, bands)
            h, w = min(block, size - row), min(block, size - col)
            out.write(image[:, :h, :w].astype(np.uint16), window=Window(col, row, w, h))
