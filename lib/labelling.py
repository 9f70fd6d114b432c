"""What label.py's page reads and changes: a tile folder's training tiles, their clicks CSVs, views
of the tiles (and of a run's prediction) at the size the page shows them.

A tile's clicks live in DIR/train/points/<stem>.csv, the format train.py reads: a header x,y,class
and a row per click; suggest.py's proposals are rows whose class is empty. Every change reads the
file as it is now (another program may have changed it: suggest.py, an editor), changes one row,
and writes it back atomically, under a lock per tile, so concurrent clicks are all kept and
nothing is overwritten blindly. Undo takes back this page's last change to a tile.
"""

import csv
import io
import threading
from pathlib import Path

import numpy as np

from lib import annotations, rasters
from lib.cli import atomic, need

MAX_VIEW = 4096  # the widest view sent, in screen pixels


class Refused(ValueError):
    """A request that changes nothing: its HTTP status and a one-line reason."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class Folder:
    def __init__(self, root, run=None):
        self.root = Path(root)
        self.legend = annotations.read_legend(self.root)
        self.classes = list(self.legend.names)
        colours = annotations.colourise(np.arange(len(self.classes), dtype=np.uint8)[None], None)[0]
        if self.legend.colours and all(self.legend.colours):
            colours = [annotations.colour_rgb(c) for c in self.legend.colours]
        self.colours = ["#" + "".join(f"{int(v):02x}" for v in c) for c in colours]
        images = self.root / "train" / "images"
        found = sorted(p for p in images.glob("*") if p.suffix.lower() in rasters.IMAGE_SUFFIXES)
        if not found:
            raise ValueError(f"{images}: no training tiles ({', '.join(rasters.IMAGE_SUFFIXES)})")
        self.paths = {p.stem: p for p in found}
        self.points = self.root / "train" / "points"
        self.locks = {stem: threading.Lock() for stem in self.paths}
        self.undo = {stem: [] for stem in self.paths}
        self.sizes, self.stretch, self.cache = {}, {}, {}
        self.run, self.model, self.predictions = None, None, {}
        self.use_run(run)

    # --- the tiles and their clicks -------------------------------------------------------------

    def path(self, stem):
        if stem not in self.paths:  # also every name that climbs out of the folder
            raise Refused(404, f"no training tile {stem!r} in {self.root / 'train' / 'images'}")
        return self.paths[stem]

    def size(self, stem):
        """(width, height), without reading a big tile's pixels."""
        if stem not in self.sizes:
            path = self.path(stem)
            if rasters.is_tiff(path):
                with need("lib.geotiff", "GeoTIFF tiles").open_tiff(path) as raster:
                    self.sizes[stem] = raster.width, raster.height
            elif path.suffix.lower() == ".npy":
                self.sizes[stem] = tuple(np.load(path, mmap_mode="r").shape[:-3:-1])
            else:  # the header only: listing a folder of big PNGs decodes none of them
                with need("PIL.Image", "PNG and JPEG tiles").open(path) as image:
                    self.sizes[stem] = image.size
        return self.sizes[stem]

    def rows(self, stem):
        """The CSV's rows [x, y, class] as they are now ('' for an open proposal)."""
        file = self.points / f"{stem}.csv"
        if not file.exists():
            return []
        try:
            rows = annotations.csv_rows(file)
        except ValueError as error:
            raise Refused(409, str(error)) from None
        try:
            return [[int(r[0]), int(r[1]), r[2].strip() if len(r) > 2 else ""] for r in rows if r]
        except ValueError:
            raise Refused(409, f"{file}: a row is not x,y,class with integer pixels") from None

    def state(self, stem):
        self.path(stem)
        rows = self.rows(stem)
        clicks, proposals = [r for r in rows if r[2]], [r[:2] for r in rows if not r[2]]
        # the proposals in suggest.py's order: least sure first
        return dict(stem=stem, clicks=clicks, proposals=proposals, undo=len(self.undo[stem]))

    def summary(self):
        listed = []
        for stem in self.paths:
            rows = self.rows(stem)
            width, height = self.size(stem)
            proposals = sum(not r[2] for r in rows)
            clicks = len(rows) - proposals
            listed.append(
                dict(stem=stem, width=width, height=height, clicks=clicks, proposals=proposals)
            )
        return dict(classes=self.classes, colours=self.colours, tiles=listed, run=self.run)

    def click(self, stem, body):
        """Label pixel (x, y): answer the open proposal there, or add a click."""
        if not isinstance(body, dict) or not {"x", "y", "class"} <= set(body):
            raise Refused(400, 'expected a JSON object {"x": ..., "y": ..., "class": ...}')
        x, y, name = body["x"], body["y"], body["class"]
        if isinstance(name, int) and not isinstance(name, bool) and 0 <= name < len(self.classes):
            name = self.classes[name]
        if name not in self.classes:
            raise Refused(400, f"unknown class {name!r}; classes.txt has {self.classes}")
        width, height = self.size(stem)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (x, y)) or not (
            0 <= x < width and 0 <= y < height
        ):
            raise Refused(400, f"pixel ({x}, {y}) is outside the {width}x{height} tile {stem}")
        with self.locks[stem]:
            rows = self.rows(stem)
            open_here = [r for r in rows if r[:2] == [x, y] and not r[2]]
            if open_here:
                open_here[0][2] = name
                self.undo[stem].append(("answered", x, y, name))
            else:
                rows.append([x, y, name])
                self.undo[stem].append(("added", x, y, name))
            self.write(stem, rows)
        return self.state(stem)

    def take_back(self, stem):
        """Undo this page's last change to the tile, on the file as it is now."""
        self.path(stem)
        with self.locks[stem]:
            if not self.undo[stem]:
                raise Refused(409, f"nothing to undo on {stem}")
            kind, x, y, name = self.undo[stem].pop()
            rows = self.rows(stem)
            match = [r for r in rows if r == [x, y, name]]
            if match:  # gone already (another program removed it): nothing left to undo
                if kind == "added":
                    rows.remove(match[-1])
                else:
                    match[-1][2] = ""
                self.write(stem, rows)
        return self.state(stem)

    def withdraw_proposals(self):
        """Remove the open proposals (rows x,y, with no class) from every tile's CSV: train.py
        stops at one, and the next round's suggest.py proposes anew. How many there were."""
        withdrawn = 0
        for stem in self.paths:
            with self.locks[stem]:
                rows = self.rows(stem)
                answered = [r for r in rows if r[2]]
                if len(answered) < len(rows):
                    withdrawn += len(rows) - len(answered)
                    self.write(stem, answered)
        return withdrawn

    def write(self, stem, rows):
        self.points.mkdir(parents=True, exist_ok=True)
        with atomic(self.points / f"{stem}.csv") as tmp, open(tmp, "w", newline="") as f:
            csv.writer(f).writerows([["x", "y", "class"], *rows])

    # --- what the page shows --------------------------------------------------------------------

    def pixels(self, stem):
        """A PNG/JPEG/.npy tile's pixels, the last few kept (a GeoTIFF is read window by window)."""
        if stem not in self.cache:
            if len(self.cache) >= 2:
                self.cache.pop(next(iter(self.cache)))
            self.cache[stem] = rasters.read_image(self.path(stem))
        return self.cache[stem]

    def window(self, stem, x, y, w, h, width):
        """(bands, h', w') pixels of the region, read at about `width` columns (every n-th pixel of
        a big region: a GeoTIFF gives it from its overviews or by decimated reads)."""
        return self.read(stem, x, y, w, h, stride(w, width))

    def read(self, stem, x, y, w, h, step=1):
        """(bands, h', w') pixels of the region, every `step`-th pixel (1: all of them)."""
        path = self.path(stem)
        if rasters.is_tiff(path):
            geotiff = need("lib.geotiff", "GeoTIFF tiles")
            with geotiff.open_tiff(path) as raster:
                shape = (raster.count, max(1, h // step), max(1, w // step))
                return raster.read(window=geotiff.Window(x, y, w, h), out_shape=shape)
        return np.asarray(self.pixels(stem)[:, y : y + h : step, x : x + w : step])

    def region(self, stem, query):
        tile_w, tile_h = self.size(stem)
        try:
            x, y, w, h, width = (
                int(query.get(k, [d])[0])
                for k, d in (("x", 0), ("y", 0), ("w", tile_w), ("h", tile_h), ("width", 1024))
            )
        except ValueError:
            raise Refused(400, "x, y, w, h and width must be integers") from None
        x, y = min(max(0, x), tile_w - 1), min(max(0, y), tile_h - 1)
        return x, y, max(1, min(w, tile_w - x)), max(1, min(h, tile_h - y)), max(1, width)

    def image_png(self, stem, query):
        x, y, w, h, width = self.region(stem, query)
        pixels = self.window(stem, x, y, w, h, width)
        bands = [pixels[min(b, len(pixels) - 1)] for b in range(3)]
        if stem not in self.stretch:  # one stretch per tile, from a view of all of it
            whole = self.window(stem, 0, 0, *self.size(stem), 512).astype(np.float32)
            self.stretch[stem] = np.percentile(whole[:3], [2, 98])
        low, high = self.stretch[stem]
        rgb = np.clip((np.stack(bands, -1).astype(np.float32) - low) / max(high - low, 1e-6), 0, 1)
        return png((rgb * 255).astype(np.uint8))

    # --- a run's prediction ---------------------------------------------------------------------

    def use_run(self, run):
        """Show RUN's prediction (RUN/model.pt) from now on."""
        self.run, self.model, self.predictions = run and str(run), None, {}
        if run:
            from lib.checkpoint import load_checkpoint

            self.model, checkpoint = load_checkpoint(Path(run) / "model.pt")
            self.window_size = checkpoint["image_size"]

    def prediction_png(self, stem, query):
        if self.model is None:
            raise Refused(404, "no run to show: start label.py with --run RUN")
        if stem not in self.predictions:  # the whole tile once, as predict.py segments it
            from lib.evaluation import predict_tile

            path = self.path(stem)
            if rasters.is_tiff(path):
                classes = np.zeros(self.size(stem)[::-1], np.uint8)
                for row, col, block in need("lib.geotiff", "GeoTIFF tiles").predict_scene(
                    path,
                    lambda p: predict_tile(self.model, p, self.window_size).argmax(0).numpy(),
                    self.window_size,
                ):
                    classes[row : row + block.shape[0], col : col + block.shape[1]] = block
            else:
                logits = predict_tile(self.model, self.pixels(stem), self.window_size)
                classes = logits.argmax(0).numpy().astype(np.uint8)
            self.predictions = {stem: classes}  # one tile's map kept: a big one is large
        x, y, w, h, width = self.region(stem, query)
        step = stride(w, width)
        return class_png(self.predictions[stem][y : y + h : step, x : x + w : step], self.colours)


def stride(w, width):
    """Every how many pixels a region w pixels wide is read to show it about `width` wide."""
    return max(1, -(-w // max(1, min(width, MAX_VIEW))))


def class_png(class_map, colours):
    """A class map as an opaque PNG in the legend's colours: what the page lays over a tile."""
    opaque = np.full(class_map.shape + (1,), 255, np.uint8)
    return png(np.concatenate([annotations.colourise(class_map, colours), opaque], -1))


def png(array):
    buffer = io.BytesIO()
    need("PIL.Image", "the page's views").fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()
