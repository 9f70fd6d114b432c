"""Clicks: the labels an annotator gives, drawn from a dense mask as an annotator would click.

Training sees `point_labels`: UNLABELED (-1, pce.py) everywhere except at the clicked pixels,
which carry their class. Clicks are drawn once per training image from its dense mask (or read
from the user's CSV, lib/annotations.py) and then kept fixed, as an annotator clicks once; they
are kept as coordinate lists, so a big tile costs a few hundred numbers, not a label plane.
lib/crops.py cuts the training crops around them.
"""

import math
from typing import NamedTuple

import numpy as np
import torch

from data import IGNORE
from pce import UNLABELED


class Clicks(NamedTuple):
    """The clicks on one image as coordinate lists: row, column and class of each clicked pixel.
    A few hundred numbers, where an (H, W) label plane of a large tile would take megabytes."""

    rows: np.ndarray
    cols: np.ndarray
    classes: np.ndarray

    def point_labels(self, shape, top=0, left=0):
        """The (h, w) int64 label plane of the window at (top, left): UNLABELED everywhere except at
        the clicks inside it, which carry their class."""
        point_labels = np.full(shape, UNLABELED, dtype=np.int64)
        inside = (
            (self.rows >= top)
            & (self.rows < top + shape[0])
            & (self.cols >= left)
            & (self.cols < left + shape[1])
        )
        point_labels[self.rows[inside] - top, self.cols[inside] - left] = self.classes[inside]
        return point_labels


STRATEGIES = ("random", "stratified")  # how per-class clicks are placed


def check_choice(what, value, allowed):
    """One line naming a bad choice and the allowed ones."""
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}: use {' or '.join(allowed)}")


def click_rng(seed):
    """The random stream that draws a split's clicks: its own, so the clicks do not move when
    anything else drawn from the seed changes (tiles.py draws a folder's from it too)."""
    return np.random.default_rng([seed, 1000])


# a tile not yet clicked
NO_CLICKS = Clicks(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))


def sample_points(dense_mask, rng, points_per_image=None, points_per_class=None, strategy="random"):
    """Clicks on one image, drawn from its dense mask.

    points_per_image=N: N pixels uniformly at random. points_per_class=K: K pixels of every class
    present (all of them if a class has fewer), chosen at random or, with strategy="stratified",
    spread over the class's extent: its bounding box is cut into a grid of ~K cells and the
    clicks go round the cells, one per cell per round. Pixels marked IGNORE are never clicked.
    """
    if (points_per_image is None) == (points_per_class is None):
        raise ValueError("give exactly one of points_per_image and points_per_class")
    check_choice("strategy", strategy, STRATEGIES)
    count = points_per_image if points_per_class is None else points_per_class
    if int(count) != count or count < 1:
        raise ValueError(f"number of points must be a positive integer, got {count}")
    flat = dense_mask.reshape(-1)
    if points_per_image is not None:
        candidates = np.flatnonzero(flat != IGNORE)
        if points_per_image > len(candidates):
            raise ValueError(
                f"{points_per_image} points per image asked, but the image has only "
                f"{len(candidates)} labeled pixels ({dense_mask.shape[0]}x{dense_mask.shape[1]})"
            )
        chosen = [rng.choice(candidates, size=points_per_image, replace=False)]
    else:
        chosen = []
        for c in np.unique(flat[flat != IGNORE]):
            pixels = np.flatnonzero(flat == c)
            if len(pixels) <= points_per_class:
                chosen.append(pixels)
            elif strategy == "random":
                chosen.append(rng.choice(pixels, size=points_per_class, replace=False))
            else:
                chosen.append(spread_choice(rng, pixels, points_per_class, dense_mask.shape[1]))
    chosen = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)
    rows, cols = np.divmod(chosen, dense_mask.shape[1])
    return Clicks(rows, cols, flat[chosen].astype(np.int64))


def spread_choice(rng, pixels, k, width):
    """k of the flat pixel indices, spread in space: one per grid cell, round after round."""
    ys, xs = np.divmod(pixels, width)
    grid = math.ceil(math.sqrt(k))
    cell_y = (ys - ys.min()) * grid // (ys.max() - ys.min() + 1)
    cell_x = (xs - xs.min()) * grid // (xs.max() - xs.min() + 1)
    cell = cell_y * grid + cell_x
    order = rng.permutation(len(pixels))  # random pick inside each cell...
    by_cell = order[np.argsort(cell[order], kind="stable")]
    starts = np.flatnonzero(np.r_[True, np.diff(cell[by_cell]) != 0])
    # ...and its turn: 0 for a cell's first pixel
    round_number = np.empty(len(pixels), dtype=np.int64)
    round_number[by_cell] = np.arange(len(pixels)) - np.repeat(
        starts, np.diff(np.r_[starts, len(pixels)])
    )
    cell_turn = rng.permutation(grid * grid)[cell]  # cells take turns in random order each round
    return pixels[np.argsort(round_number * grid * grid + cell_turn, kind="stable")[:k]]


def every_pixel(dense_mask):
    """Dense supervision written as point labels: every known pixel is a click, IGNORE becomes
    UNLABELED. (Cast before the -1 goes in: in a uint8 mask it would wrap round to 255.)"""
    return np.where(dense_mask == IGNORE, UNLABELED, dense_mask.astype(np.int64))


def count_labels(labels):
    """Labeled pixels of one training tile: its clicks, or the known pixels of its dense mask."""
    return (
        labels.rows.size
        if isinstance(labels, Clicks)
        else int((np.asarray(labels) != IGNORE).sum())
    )


def class_counts(point_labels, num_classes):
    """How many training labels (clicks, or known pixels of dense masks) each class has."""
    counts = np.zeros(num_classes)
    for labels in point_labels:
        values = labels.classes if isinstance(labels, Clicks) else np.asarray(labels).reshape(-1)
        known = values[values != IGNORE].astype(np.int64)
        counts += np.bincount(known, minlength=num_classes)[:num_classes]
    return counts


def class_weights(point_labels, num_classes):
    """Class-balanced pCE's weights: each class the inverse of its share of the training labels,
    scaled so the classes that have labels average 1 (a class without any keeps 1)."""
    counts = class_counts(point_labels, num_classes)
    present = counts > 0
    weights = np.ones(num_classes)
    weights[present] = counts[present].sum() / counts[present]
    weights[present] /= weights[present].mean()
    return torch.tensor(weights, dtype=torch.float32)


def sample_split_points(dense_masks, seed, **how):
    """Clicks for every image of a split, drawn once from one seeded generator."""
    rng = click_rng(seed)
    return [sample_points(m, rng, **how) for m in dense_masks]
