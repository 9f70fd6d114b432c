"""The pixel random forest's pieces: each pixel's features, the clicked pixels' features, the
class-balanced forest fitted on them, and a tile's class map or class probabilities block by block.
baseline.py fits and scores the forest with them; label.py's page fits a small one on the page's
clicks for its live preview; train.py --forest-weight W fuses its probabilities with the network's.

For every band, its raw value and, at σ = 0.7, 1.6, 3.5, 5 and 10 px (ilastik's scales), Gaussian
smoothing, gradient magnitude and the Laplacian of Gaussian: 16 features a band, 48 for RGB
(scipy.ndimage). Tiles are featurised block by block, each block read with a margin as wide as the
widest filter, so memory stays bounded on big tiles and the features equal those of the whole tile.
"""

import time
import zipfile
from pathlib import Path

import numpy as np
import torch

from clicks import Clicks
from lib.cli import atomic, need

TREES = 200  # baseline.py's forest and the one fused with the network
FILE = "forest.npz"  # beside a run's model.pt: the clicks' features its fused forest is fitted on
FLOOR = 1e-3  # a forest probability below this counts as this: one tree's vote is 1/TREES
SIGMAS = (0.7, 1.6, 3.5, 5.0, 10.0)  # px: ilastik's default scales
BLOCK = 512  # tiles are featurised in BLOCK x BLOCK pieces ...
# ... plus the reach of the widest filter (scipy truncates at 4 sigma)
MARGIN = int(4 * max(SIGMAS) + 0.5)


def features(image):
    """(16 x bands, h, w) float32: each band raw, then smoothed, gradient magnitude and LoG per
    sigma."""
    ndimage = need("scipy.ndimage", "the pixel random forest's filters")
    planes = []
    for band in np.asarray(image, dtype=np.float32):
        planes.append(band)
        for sigma in SIGMAS:
            planes += [
                ndimage.gaussian_filter(band, sigma),
                ndimage.gaussian_gradient_magnitude(band, sigma),
                ndimage.gaussian_laplace(band, sigma),
            ]
    return np.stack(planes)


def blocks(image, block=BLOCK):
    """Yield (top, left, features of the block) over a (bands, H, W) tile, block by block: each
    block featurised with a margin of real context where the tile has it, then cut to the block."""
    h, w = image.shape[-2:]
    for top in range(0, h, block):
        for left in range(0, w, block):
            y0, x0 = max(top - MARGIN, 0), max(left - MARGIN, 0)
            y1, x1 = min(top + block + MARGIN, h), min(left + block + MARGIN, w)
            f = features(image[:, y0:y1, x0:x1])
            yield (
                top,
                left,
                f[:, top - y0 : min(top + block, h) - y0, left - x0 : min(left + block, w) - x0],
            )


def training_pixels(images, point_labels):
    """(features (n, F), classes (n,)) at every click of the training tiles; one line if a tile
    has a mask to learn from, not clicks."""
    if not all(isinstance(labels, Clicks) for labels in point_labels):
        raise ValueError(
            "the pixel forest is fitted on clicks: a training tile has none (every training tile "
            "needs points/<stem>.csv or a mask to sample them from)"
        )
    xs, ys = [], []
    for image, clicks in zip(images, point_labels):
        for top, left, f in blocks(image):
            inside = (
                (clicks.rows >= top)
                & (clicks.rows < top + f.shape[1])
                & (clicks.cols >= left)
                & (clicks.cols < left + f.shape[2])
            )
            xs.append(f[:, clicks.rows[inside] - top, clicks.cols[inside] - left].T)
            ys.append(clicks.classes[inside])
    return np.concatenate(xs), np.concatenate(ys)


def predict(forest, image):
    """(H, W) uint8 class map of a whole tile, block by block."""
    class_map = np.zeros(image.shape[-2:], np.uint8)
    for top, left, f in blocks(image):
        classes = forest.predict(f.reshape(len(f), -1).T)
        class_map[top : top + f.shape[1], left : left + f.shape[2]] = classes.reshape(f.shape[1:])
    return class_map


def fit(pixels, classes, seed, trees=TREES):
    """The forest baseline.py scores: `trees` class-balanced trees on the clicks' features, one
    fit per seed (the same clicks and seed give the same forest, however many cores fit it)."""
    ensemble = need("sklearn.ensemble", "the pixel random forest")
    forest = ensemble.RandomForestClassifier(
        trees, class_weight="balanced", n_jobs=-1, random_state=seed
    )
    return forest.fit(pixels, classes)


def probabilities(forest, image, num_classes):
    """(num_classes, H, W) float32: the share of the forest's trees voting for each class at each
    pixel of a tile, block by block; a class no click had gets 0."""
    shares = np.zeros((num_classes, *image.shape[-2:]), np.float32)
    for top, left, f in blocks(image):
        shares[:, top : top + f.shape[1], left : left + f.shape[2]] = probabilities_of(
            forest, f, num_classes
        )
    return torch.from_numpy(shares)


def probabilities_of(forest, planes, num_classes):
    """(num_classes, h, w) float32 numpy: the forest's votes at each pixel of a feature stack
    (F, h, w); a class no click had gets 0."""
    shares = np.zeros((num_classes, *planes.shape[1:]), np.float32)
    voted = forest.predict_proba(planes.reshape(len(planes), -1).T).T  # (its classes, pixels)
    shares[forest.classes_] = voted.reshape(len(voted), *planes.shape[1:])
    return shares


def fuse(logits, forest_shares, weight):
    """The network's and the forest's class probabilities fused by a weighted geometric mean,
    p ∝ p_network^(1 - weight) · p_forest^weight, as log-probabilities (C, H, W) up to a constant
    per pixel: what argmax and softmax need. weight 0 is the network alone, 1 the forest alone.
    The two err differently (the network on colour-alike classes it has seen few clicks of, the
    forest at texture and shape), and where one is unsure the other decides. A forest share of
    0 is taken as FLOOR, so that no class is ruled out by the forest alone."""
    network = torch.log_softmax(logits.float(), 0)
    return (1 - weight) * network + weight * forest_shares.clamp_min(FLOOR).log()


class Fusion:
    """--forest-weight W: the forest fitted on a run's clicks, fused into the run's maps
    (`fusion(image, logits)`, the fused scores). The run keeps the clicks' features in
    forest.npz, not the forest (hundreds of MB of trees, tied to one scikit-learn version): the
    same features and seed fit the same forest again where predict.py needs it."""

    def __init__(self, pixels, classes, seed, weight, num_classes):
        self.pixels, self.classes, self.seed = pixels, classes, seed
        self.weight, self.num_classes = weight, num_classes
        self.forest = fit(pixels, classes, seed)

    @classmethod
    def for_run(cls, data, config):
        """train.py's and rescore.py's: fitted on the run's training clicks with its seed and
        --forest-weight, the time it took in `fit_seconds`; None with --forest-weight 0."""
        if not config["forest_weight"]:
            return None
        started = time.time()
        print("fitting the pixel forest on the training clicks (--forest-weight)", flush=True)
        pixels, classes = training_pixels(*data["train"])
        fusion = cls(pixels, classes, config["seed"], config["forest_weight"], len(data["classes"]))
        fusion.fit_seconds = round(time.time() - started, 2)
        print(f"... on {len(classes)} clicks in {fusion.fit_seconds:.0f}s", flush=True)
        return fusion

    @classmethod
    def beside(cls, checkpoint):
        """The fusion of the run whose model.pt is `checkpoint`; None without forest.npz beside."""
        path = Path(checkpoint).with_name(FILE)
        if not path.is_file():
            return None
        try:
            with np.load(path) as saved:
                pixels, classes = saved["pixels"], saved["classes"]
                seed, weight = int(saved["seed"]), float(saved["weight"])
                num_classes = int(saved["num_classes"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            raise ValueError(f"{path}: not the forest.npz of a train.py run ({error})") from None
        print(f"fitting the run's pixel forest again on its {len(classes)} clicks ({path})")
        return cls(pixels, classes, seed, weight, num_classes)

    def save(self, folder):
        with atomic(Path(folder) / FILE) as tmp, open(tmp, "wb") as file:
            np.savez_compressed(
                file,
                pixels=self.pixels,
                classes=self.classes,
                seed=self.seed,
                weight=self.weight,
                num_classes=self.num_classes,
            )

    def __call__(self, image, logits):
        return self.of_tile(image)(logits)

    def of_tile(self, image):
        """fused(logits) for one tile: the forest's shares of it computed once, for as many views
        of the tile as are scored (lib/evaluation.evaluate_views)."""
        shares = probabilities(self.forest, np.asarray(image), self.num_classes)
        return lambda logits: fuse(logits, shares, self.weight)
