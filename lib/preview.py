"""label.py's live preview: a small pixel forest fitted on the page's clicks, painted over the tile
in view, so that a person sees where the map is wrong before spending a round of training.

The forest is baseline.py's (lib/forest.py's 48 features a pixel for RGB, class-balanced trees),
smaller (PREVIEW_TREES trees) so that a fit and a map take a second or two on a laptop's CPU. Its
pieces are computed once and kept: the features of the tile in view (the whole tile when it holds
at most PREVIEW_PIXELS pixels, else of the region in view, which must then hold at most that
many), and each click's feature vector (a tile's clicks read in one window around them, or one
small window each when they are far apart on a big tile). A click or an undo changes the clicks;
the next map fits the forest anew on all of them. The preview reads the folder and never writes
to it.
"""

import threading
import time

import numpy as np

from lib.cli import need
from lib.forest import MARGIN, features
from lib.labelling import Refused, class_png, stride

PREVIEW_TREES = 50
PREVIEW_PIXELS = 4_000_000  # the most pixels whose features the preview computes at once


class Preview:
    def __init__(self, folder):
        self.folder = folder
        self.lock = threading.Lock()  # one fit or map at a time: they share the caches
        self.view = None  # (stem, (x0, y0, x1, y1), features of that box) of the tile in view
        self.vectors = {}  # stem -> {(x, y): the click's feature vector}
        self.fitted = None  # (the clicks it was fitted on, the forest)
        self.seconds = {}  # what the last map cost: features, fit, predict

    def png(self, stem, query):
        """The forest's class map of the region in view, as prediction_png draws a run's."""
        x, y, w, h, width = self.folder.region(stem, query)
        with self.lock:
            started = time.time()
            step = stride(w, width)  # the pixels the page shows, as a run's map is sent
            pixels = self.region_features(stem, x, y, w, h)[:, ::step, ::step]
            featurised = time.time()
            forest = self.forest()  # the tile in view's clicks: cut from its features
            fitted = time.time()
            classes = forest.predict(pixels.reshape(len(pixels), -1).T).astype(np.uint8)
            view = classes.reshape(pixels.shape[1:])
            self.seconds = dict(
                features=round(featurised - started, 3),
                fit=round(fitted - featurised, 3),
                predict=round(time.time() - fitted, 3),
            )
        return class_png(view, self.folder.colours)

    def prepare(self, stem):
        """Compute the features of a tile that fits PREVIEW_PIXELS, ahead of its first click (the
        page calls it when it opens a tile); a bigger tile's are computed per view."""
        width, height = self.folder.size(stem)
        if width * height <= PREVIEW_PIXELS:
            with self.lock:
                self.region_features(stem, 0, 0, width, height)

    def region_features(self, stem, x, y, w, h):
        """(F, h, w) features of the region, cut from the kept ones when they cover it."""
        width, height = self.folder.size(stem)
        if width * height <= PREVIEW_PIXELS:  # a tile that fits: all of it, once
            box = (0, 0, width, height)
        elif w * h <= PREVIEW_PIXELS:
            box = (x, y, x + w, y + h)
        else:
            raise Refused(
                409,
                f"the view holds {w * h / 1e6:.1f} MP; the preview maps at most "
                f"{PREVIEW_PIXELS / 1e6:.0f} MP at once: zoom in",
            )
        if not self.covers(stem, x, y, x + w, y + h):
            self.view = None  # the old features go before the new ones are made
            x0, y0, x1, y1 = box
            self.view = (stem, box, self.window_features(stem, x0, y0, x1 - x0, y1 - y0))
        _, (x0, y0, _, _), kept = self.view
        return kept[:, y - y0 : y + h - y0, x - x0 : x + w - x0]

    def covers(self, stem, x0, y0, x1, y1):
        """Whether the kept features hold the region (x0, y0)-(x1, y1) of the tile."""
        if not self.view or self.view[0] != stem:
            return False
        left, top, right, bottom = self.view[1]
        return left <= x0 and top <= y0 and x1 <= right and y1 <= bottom

    def window_features(self, stem, x, y, w, h):
        """Features of a region, read with a margin of real context as wide as the widest filter
        where the tile has it (as lib/forest.blocks does), so that they equal the whole tile's."""
        width, height = self.folder.size(stem)
        x0, y0 = max(x - MARGIN, 0), max(y - MARGIN, 0)
        x1, y1 = min(x + w + MARGIN, width), min(y + h + MARGIN, height)
        pixels = self.folder.read(stem, x0, y0, x1 - x0, y1 - y0)
        return features(pixels)[:, y - y0 : y + h - y0, x - x0 : x + w - x0]

    def forest(self):
        """The forest fitted on the folder's clicks as they are now (refitted when they change)."""
        clicks = {stem: self.folder.state(stem)["clicks"] for stem in self.folder.paths}
        clicks = {stem: rows for stem, rows in clicks.items() if rows}
        if not clicks:
            raise Refused(409, "no clicks yet: the preview learns from them")
        if self.fitted and self.fitted[0] == clicks:
            return self.fitted[1]
        vectors, classes = [], []
        for stem, rows in clicks.items():
            known = self.click_vectors(stem, rows)
            vectors += [known[x, y] for x, y, _ in rows]
            classes += [self.folder.classes.index(name) for _, _, name in rows]
        ensemble = need("sklearn.ensemble", "the page's live preview (a pixel forest)")
        forest = ensemble.RandomForestClassifier(
            PREVIEW_TREES, class_weight="balanced", n_jobs=-1, random_state=0
        ).fit(np.stack(vectors), np.asarray(classes))
        self.fitted = (clicks, forest)
        return forest

    def click_vectors(self, stem, rows):
        """{(x, y): feature vector} of a tile's clicks, the new ones computed: cut from the kept
        features of the tile in view, else read in one window around them, else (far apart on a
        big tile) in one small window each."""
        known = self.vectors.setdefault(stem, {})
        new = [(x, y) for x, y, _ in rows if (x, y) not in known]
        if new and self.view and self.view[0] == stem:
            _, (left, top, _, _), kept = self.view
            for x, y in new:
                if self.covers(stem, x, y, x + 1, y + 1):
                    known[x, y] = kept[:, y - top, x - left].copy()
            new = [p for p in new if p not in known]
        if not new:
            return known
        xs, ys = [x for x, _ in new], [y for _, y in new]
        w, h = max(xs) - min(xs) + 1, max(ys) - min(ys) + 1
        if w * h <= PREVIEW_PIXELS:
            boxes = [(min(xs), min(ys), w, h)]
        else:
            boxes = [(x, y, 1, 1) for x, y in new]
        for left, top, w, h in boxes:
            region = self.window_features(stem, left, top, w, h)
            for x, y in new:
                if left <= x < left + w and top <= y < top + h:
                    known[x, y] = region[:, y - top, x - left].copy()
        return known
