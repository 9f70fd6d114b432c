"""suggest.py's proposals as files a person labels from: a preview of each tile (the image with
its clicks dotted and the proposals ringed, beside the prediction) and, over georeferenced
GeoTIFF tiles, a point layer (proposals.gpkg) for labelling in a GIS."""

import numpy as np

from lib import annotations, rasters
from lib.cli import atomic, need


def preview(image, class_map, colours, clicks, proposals):
    """The image (first three bands, stretched) with clicks dotted and proposals ringed | the
    prediction."""
    bands, (h, w) = [np.asarray(image[min(b, len(image) - 1)]) for b in range(3)], class_map.shape
    # the stretch from a sample: a big tile is not copied as floats
    step = max(1, h // 1024, w // 1024)
    low, high = np.percentile(
        np.stack([band[::step, ::step] for band in bands]).astype(np.float32), [2, 98]
    )
    both = np.empty((h, 2 * w, 3), np.uint8)
    for b, band in enumerate(bands):  # one band, 512 rows at a time in float
        for r in range(0, h, 512):
            both[r : r + 512, :w, b] = np.clip(
                (band[r : r + 512].astype(np.float32) - low) / max(high - low, 1e-6) * 255, 0, 255
            )
    both[:, w:] = annotations.colourise(class_map, colours)
    picture = need("PIL.Image", "drawing the previews").fromarray(both)
    draw = need("PIL.ImageDraw", "drawing the previews").Draw(picture)
    for y, x in zip(clicks.rows.tolist(), clicks.cols.tolist()):
        draw.rectangle([x - 1, y - 1, x + 1, y + 1], fill="white")
    for y, x in proposals:
        draw.ellipse([x - 4, y - 4, x + 4, y + 4], outline="black", width=3)
        draw.ellipse([x - 4, y - 4, x + 4, y + 4], outline="yellow", width=1)
    return picture


def write_layer(out, paths, chosen, classes):
    """Over georeferenced GeoTIFF tiles, the proposals as a point layer too (OUT/proposals.gpkg)
    for a person who labels in a GIS; returns how the summary line names it."""
    by_tile = {}
    for margin, t, y, x, k in sorted(chosen, key=lambda entry: entry[1:4]):
        by_tile.setdefault(paths[t], []).append((y, x, k, margin))
    if not by_tile or not all(rasters.is_tiff(path) for path in by_tile):
        return ""
    geotiff = need("lib.geotiff", "proposals over GeoTIFF tiles")
    with geotiff.open_tiff(next(iter(by_tile))) as raster:
        crs = raster.crs  # the layer's: the first tile's
    if crs is None:
        return ""
    with atomic(out / "proposals.gpkg") as tmp:
        need("lib.vector_out", "the proposals' point layer").write_proposals(
            tmp, list(by_tile.items()), classes, crs
        )
    return f" (or in the point layer {out / 'proposals.gpkg'}: train.py --points-file)"
