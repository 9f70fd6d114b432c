"""GIS point layers in: the clicks where GIS users keep them.

An analyst clicks in QGIS (or ArcGIS, or QField in the field): a point layer, a GeoPackage, a
GeoJSON or a shapefile, each point with a class attribute, in map coordinates. `read_layer`
reads it with fiona (GDAL's vector side, rasterio's sibling); `layer_clicks` places its points on
each GeoTIFF tile whose footprint holds them: reprojected from the layer's CRS to the tile's
(rasterio.warp.transform; a GeoJSON is lon/lat WGS 84, RFC 7946), then to a pixel by the tile's
transform. On training tiles the points are clicks; on val and test tiles without masks they are
reference points, and the split is scored on them (the good-practice way of assessing a land-cover
map, Olofsson et al. 2014): a mask that is unknown (255) everywhere but at the points, through
the same confusion matrix. What goes back out to a GIS (points, proposals, polygons) is in
lib/vector_out.py.
"""

import re
import warnings
from pathlib import Path

import fiona
import numpy as np
import rasterio
from rasterio import warp

from clicks import Clicks
from data import IGNORE

POINT_SUFFIXES = (".gpkg", ".geojson", ".json", ".shp")


def class_index(value, classes, codes=None):
    """A class attribute -> its index: a class name of classes.txt, or a number: the class's code
    where classes.txt gives value codes (`Water 3`), else the index itself; None if neither."""
    if isinstance(value, str):
        value = value.strip()
        if value in classes:
            return list(classes).index(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not number.is_integer():
        return None
    if codes and not isinstance(codes[0], str):
        return codes.index(int(number)) if int(number) in codes else None
    return int(number) if 0 <= number < len(classes) else None


def read_layer(path, class_field, classes, codes=None):
    """(the layer's CRS, [(feature id, x, y, class index)]) of a point layer; every bad input one
    ValueError line: a missing file, no CRS, no such field, a non-point geometry, an unknown
    class."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(
            f"--points-file {path}: not found (a GeoPackage, GeoJSON or shapefile of points)"
        )
    if path.suffix.lower() == ".shp" and not any(
        path.with_suffix(s).is_file() for s in (".dbf", ".DBF")
    ):
        raise ValueError(
            f"{path}: its attribute table {path.with_suffix('.dbf').name}, which holds the "
            f"{class_field!r} field, is missing: a shapefile is several files, copy them all"
        )
    try:
        with fiona.open(path) as layer:
            fields = list(layer.schema["properties"])
            if class_field not in fields:
                raise ValueError(
                    f"{path}: the layer has no field {class_field!r}; its fields: "
                    f"{', '.join(fields) or 'none'} (choose one with --class-field)"
                )
            if not layer.crs:
                raise ValueError(
                    f"{path}: the layer has no CRS; set its CRS in your GIS and save it again"
                )
            crs = layer.crs
            points = [layer_point(path, feature, class_field, classes, codes) for feature in layer]
    except fiona.errors.FionaError as error:
        raise ValueError(
            f"{path}: cannot read the point layer ({type(error).__name__}: {error})"
        ) from None
    if not points:
        raise ValueError(f"{path}: the layer holds no points; add the clicks in your GIS and save")
    return crs, points, path


def layer_point(path, feature, class_field, classes, codes):
    """(feature id, x, y, class index) of one feature of a point layer; one ValueError line for a
    feature that is not a point, has no class yet, or a class classes.txt lacks."""
    kind = feature.geometry.type if feature.geometry else "feature without a geometry"
    if kind != "Point":
        raise ValueError(
            f"{path}: feature {feature.id} is a {kind}; a layer of clicks holds points"
        )
    value = feature.properties[class_field]
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(
            f"{path}: feature {feature.id} has no class yet (a proposal of suggest.py?): fill in "
            f"its {class_field!r} with one of {', '.join(classes)}, or delete it"
        )
    index = class_index(value, classes, codes)
    if index is None:
        numbers = (
            f"a code {', '.join(map(str, codes))}"
            if codes and not isinstance(codes[0], str)
            else f"an index 0..{len(classes) - 1}"
        )
        raise ValueError(
            f"{path}: feature {feature.id} has class {value!r}, which classes.txt lacks "
            f"({', '.join(classes)}, or {numbers})"
        )
    x, y = feature.geometry.coordinates[:2]
    return feature.id, float(x), float(y), index


def crs_name(crs):
    """A CRS as a person knows it: EPSG:32633, or the name in its WKT."""
    text = crs.to_string() if hasattr(crs, "to_string") else str(crs)
    if len(text) < 40:
        return text
    name = re.search(r'^\w+\["([^"]*)"', crs.to_wkt() if hasattr(crs, "to_wkt") else text)
    return name.group(1) if name else text[:40] + "..."


def layer_clicks(layers, tile_path, image, mask=None):
    """(Clicks, points left out) of the points of `layers` (read_layer's, one or more) inside one
    GeoTIFF tile, layer after layer, each in its order. A point on nodata pixels (every band the
    tile's nodata value) or on an unknown (255) pixel of `mask` is left out and counted, not
    fatal."""
    with warnings.catch_warnings():
        # said below, in one line
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        raster = rasterio.open(tile_path)
    with raster:  # the tile's place on the map, read once for all layers
        if raster.crs is None:
            raise ValueError(
                f"{tile_path}: not georeferenced (no CRS), but the point layer is in map "
                f"coordinates; give tiles as GeoTIFFs with their CRS and transform"
            )
        place = raster.crs, raster.transform, raster.nodata
    found = [one_layer_clicks(layer, place, image, mask) for layer in layers]
    return Clicks(*(np.concatenate([c[i] for c, _ in found]) for i in range(3))), sum(
        n for _, n in found
    )


def one_layer_clicks(layer, place, image, mask):
    (crs, points, path), (tile_crs, transform, nodata) = layer, place
    try:
        xs, ys = warp.transform(crs, tile_crs, [p[1] for p in points], [p[2] for p in points])
    except Exception:  # PROJ finds no operation: a planetary or local engineering CRS
        raise ValueError(
            f"{path}: its CRS ({crs_name(crs)}) cannot be transformed to the tiles' CRS "
            f"({crs_name(tile_crs)}); reproject the layer to the tiles' CRS in your GIS"
        ) from None
    cols, rows = ~transform @ (np.array(xs), np.array(ys))
    rows, cols = np.floor(rows).astype(np.int64), np.floor(cols).astype(np.int64)
    inside = (rows >= 0) & (rows < image.shape[-2]) & (cols >= 0) & (cols < image.shape[-1])
    rows, cols = rows[inside], cols[inside]
    classes = np.array([p[3] for p in points], np.int64)[inside]
    keep = np.ones(len(rows), bool)
    if nodata is not None:
        keep &= ~(np.asarray(image)[:, rows, cols] == nodata).all(0)
    if mask is not None:
        keep &= np.asarray(mask)[rows, cols] != IGNORE
    return Clicks(rows[keep], cols[keep], classes[keep]), int((~keep).sum())


def reference_mask(clicks, shape):
    """The reference points of a val/test tile as a mask: their class at their pixel, unknown (255)
    everywhere else, so the confusion matrix counts exactly the points."""
    mask = np.full(shape, IGNORE, np.uint8)
    mask[clicks.rows, clicks.cols] = clicks.classes
    return mask
