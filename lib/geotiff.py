"""GeoTIFF in and out: rasters of any band count and dtype, and predictions that keep their place
on the map.

Remote-sensing imagery comes as GeoTIFF: Sentinel-2 and Landsat scenes are uint16 with 4-13
bands, orthophotos RGB or RGB+NIR, land-cover masks value-coded rasters, and each file carries a
coordinate reference system (CRS) and the transform from pixel to map coordinates. They are read
and written with rasterio (GDAL underneath, as torchgeo does): it reads any band count, dtype and
compression (deflate, LZW, ...), and reads and writes windows of a file, so a scene larger than
memory is segmented block by block. Pillow handles every other format (rasters.py). A file named
.tif/.tiff is opened as a TIFF or not at all: GDAL would otherwise read, say, a truncated PNG
saved under that name through its PNG driver, silently, as a half-black image.
"""

import os
import warnings

import numpy as np
import rasterio
from rasterio.enums import Interleaving
from rasterio.windows import Window

BLOCK = 2048  # predict_scene works on BLOCK x BLOCK pieces of a scene, plus a margin of context
CACHE_MB = 64  # GDAL's block cache while doing so; its default, 5 % of the machine's memory,
# filled with a 10,000^2 scene's blocks: 0.68 GB more peak memory, measured


def open_tiff(path):
    """rasterio's reader for a TIFF file, and for nothing else."""
    with warnings.catch_warnings():
        # a plain TIFF is fine
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        return rasterio.open(path, driver="GTiff")


def read(path, bands=None):
    """(bands, H, W) as stored, or (H, W) with bands=1 (a mask). A file that is not a TIFF, or
    whose pixels GDAL cannot all read (a truncated file), raises rasterio's error."""
    with open_tiff(path) as raster:
        return raster.read(bands)


def pixel_size_m(path):
    """The raster's pixel width in metres, or None when its CRS is not in metres (lon/lat, or
    none): what `export.py onnx` records as the model's resolution."""
    with open_tiff(path) as raster:
        crs = raster.crs
        if crs is None or not crs.is_projected or crs.linear_units_factor[1] != 1.0:
            return None
        return abs(raster.transform.a)


def band_count(path):
    """The raster's band count, once every block its pixels are stored in is in the file: a
    truncated or half-copied GeoTIFF is refused here, in one line, before any work starts (GDAL
    itself only finds out when it reaches the missing block)."""
    try:
        with open_tiff(path) as raster:
            size = os.path.getsize(path)
            rows, cols = raster.block_shapes[0]
            blocks = [
                (band, f"{x}_{y}")
                for band in ([1] if raster.interleaving != Interleaving.band else raster.indexes)
                for y in range(-(-raster.height // rows))
                for x in range(-(-raster.width // cols))
            ]
            for band, where in blocks:
                offset = raster.get_tag_item(f"BLOCK_OFFSET_{where}", "TIFF", bidx=band)
                length = raster.get_tag_item(f"BLOCK_SIZE_{where}", "TIFF", bidx=band)
                if offset is not None and int(offset) + int(length or 0) > size:
                    raise ValueError(
                        f"{path}: truncated: a block of its pixels lies beyond the file's end "
                        f"({size} bytes); copy or download it again"
                    )
            return raster.count
    except rasterio.errors.RasterioError as error:
        raise ValueError(f"{path}: cannot read image ({type(error).__name__}: {error})") from None


def predict_scene(path, predict, window, block=BLOCK):
    """Yield (row, col, class map) for BLOCK x BLOCK blocks covering the raster at `path`.
    `predict(pixels)` maps a (bands, h, w) array to (h, w) classes; each block is read with a
    margin of half a window of real context on every side where the scene has it, so the
    result does not depend on where the blocks fall, and only one block is in memory at a time."""
    margin = window // 2
    with rasterio.Env(GDAL_CACHEMAX=CACHE_MB), open_tiff(path) as raster:
        for row in range(0, raster.height, block):
            for col in range(0, raster.width, block):
                top, left = max(row - margin, 0), max(col - margin, 0)
                bottom, right = (
                    min(row + block + margin, raster.height),
                    min(col + block + margin, raster.width),
                )
                try:
                    pixels = raster.read(window=Window(left, top, right - left, bottom - top))
                except rasterio.errors.RasterioError as error:
                    raise ValueError(
                        f"{path}: cannot read the block at row {top}, column {left} "
                        f"({type(error).__name__}: {error}): a damaged or truncated file"
                    ) from None
                classes = predict(pixels)
                yield (
                    row,
                    col,
                    classes[
                        row - top : min(row + block, raster.height) - top,
                        col - left : min(col + block, raster.width) - left,
                    ],
                )


def write(path, array, crs, transform, compress="deflate"):
    """A (bands, H, W) array as a compressed GeoTIFF placed on the map by crs/transform."""
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=array.shape[2],
        height=array.shape[1],
        count=array.shape[0],
        dtype=array.dtype,
        crs=crs,
        transform=transform,
        compress=compress,
    ) as out:
        out.write(array)


def write_blocks(path, height, width, bands, dtype, crs, transform, blocks, colours=None):
    """A tiled, deflate-compressed GeoTIFF written block by block from (row, col, array (bands, h,
    w)),
    so it can be larger than memory; `colours` (one (R, G, B) per value) become band 1's colour
    table."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with (
            rasterio.Env(GDAL_CACHEMAX=CACHE_MB),
            rasterio.open(
                path,
                "w",
                driver="GTiff",
                width=width,
                height=height,
                count=bands,
                dtype=dtype,
                crs=crs,
                transform=transform,
                compress="deflate",
                tiled=True,
                blockxsize=256,
                blockysize=256,
            ) as out,
        ):
            for row, col, array in blocks:
                out.write(array, window=Window(col, row, array.shape[2], array.shape[1]))
            if colours:
                out.write_colormap(1, {k: tuple(rgb) + (255,) for k, rgb in enumerate(colours)})


def write_classes(path, like, blocks, colours=None):
    """A single-band uint8 class raster with the CRS and transform of the raster `like`, written
    block by block from (row, col, class map); `colours` ((R, G, B) per class) become its colour
    table. Returns the whole class map (uint8), for the PNG preview."""
    with open_tiff(like) as source:
        height, width, crs, transform = source.height, source.width, source.crs, source.transform
    class_map = np.zeros((height, width), np.uint8)

    def kept(blocks):
        for row, col, classes in blocks:
            class_map[row : row + classes.shape[0], col : col + classes.shape[1]] = classes
            yield row, col, classes[None]

    write_blocks(path, height, width, 1, "uint8", crs, transform, kept(blocks), colours)
    return class_map
