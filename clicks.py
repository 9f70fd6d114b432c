"""Clicks: the labels an annotator gives, and the training crops cut around them.

Training sees `point_labels`: UNLABELED (-1, pce.py) everywhere except at the clicked pixels,
which carry their class. Clicks are drawn once per training image from its dense mask (or read
from the user's CSV, lib/annotations.py) and then kept fixed, as an annotator clicks once; they
are kept as coordinate lists, so a big tile costs a few hundred numbers, not a label plane.
`CropSampler` decides which crops an epoch trains on and `PointDataset` cuts them, image and clicks
together.
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
AUGMENTATIONS = ("hflip", "dihedral")  # how training crops are turned (CropSampler)


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


def class_weights(point_labels, num_classes):
    """Class-balanced pCE's weights: each class the inverse of its share of the training labels,
    scaled so the classes that have labels average 1 (a class without any keeps 1)."""
    counts = np.zeros(num_classes)
    for labels in point_labels:
        values = labels.classes if isinstance(labels, Clicks) else np.asarray(labels).reshape(-1)
        known = values[values != IGNORE].astype(np.int64)
        counts += np.bincount(known, minlength=num_classes)[:num_classes]
    present = counts > 0
    weights = np.ones(num_classes)
    weights[present] = counts[present].sum() / counts[present]
    weights[present] /= weights[present].mean()
    return torch.tensor(weights, dtype=torch.float32)


def sample_split_points(dense_masks, seed, **how):
    """Clicks for every image of a split, drawn once from one seeded generator."""
    rng = click_rng(seed)
    return [sample_points(m, rng, **how) for m in dense_masks]


class PointDataset(torch.utils.data.Dataset):
    """Training crops. An item is asked for by its place, (tile, top, left, turn) from CropSampler,
    and is (image float32 (B, S, S), point_labels int64 (S, S)).

    Tiles stay as stored (uint8, uint16, a memory-mapped .npy) and only the crop is converted to
    float. A tile's labels are its `Clicks`, or for dense supervision its dense mask (every known
    pixel a label). The part of a crop that overhangs its tile (tiles smaller than S) is zero
    image and UNLABELED pixels. The turn (`dihedral`) mirrors and rotates image and labels
    together, so the clicks stay on the pixels they label. The dense mask of evaluation is never
    served here. With `targets` (one class map per tile, 255 where it says nothing: another
    model's predictions, train.py --extra-targets) an item has a third member, the same crop
    of the tile's map as labels.
    """

    def __init__(self, images, point_labels, crop_size, targets=None):
        self.images, self.point_labels, self.crop_size, self.targets = (
            images,
            point_labels,
            crop_size,
            targets,
        )

    def __len__(self):
        return len(self.images)

    def __getitem__(self, place):
        tile, top, left, turn = place
        size, stored, labels = self.crop_size, self.images[tile], self.point_labels[tile]
        # inside the tile
        h, w = (min(size, stored.shape[-2] - top), min(size, stored.shape[-1] - left))
        image = np.zeros((stored.shape[0], size, size), np.float32)
        image[:, :h, :w] = stored[:, top : top + h, left : left + w]
        if isinstance(labels, Clicks):
            point_labels = labels.point_labels((size, size), top, left)
        else:
            point_labels = np.full((size, size), UNLABELED, np.int64)
            point_labels[:h, :w] = every_pixel(labels[top : top + h, left : left + w])
        image, point_labels = dihedral(image, turn), dihedral(point_labels, turn)
        item = (torch.from_numpy(image.copy()), torch.from_numpy(point_labels.copy()))
        if self.targets is None:
            return item
        target_labels = np.full((size, size), UNLABELED, np.int64)  # same crop, same turn
        target_labels[:h, :w] = every_pixel(self.targets[tile][top : top + h, left : left + w])
        return item + (torch.from_numpy(dihedral(target_labels, turn).copy()),)


def dihedral(array, turn):
    """One of the 8 symmetries of a square (the dihedral group) on the last two axes of a numpy
    array or a torch tensor: turn 0 is the identity, turn & 1 mirrors left-right, turn >> 1 then
    rotates by that many quarter turns. Nadir imagery has no "up": each is a view the network
    may meet."""
    flip, rot90 = (
        (np.flip, np.rot90) if isinstance(array, np.ndarray) else (torch.flip, torch.rot90)
    )
    array = flip(array, (-1,)) if turn & 1 else array
    return rot90(array, turn >> 1, (-2, -1)) if turn >> 1 else array


def undo_dihedral(array, turn):
    """The inverse of dihedral(., turn): rotate back, then mirror back."""
    flip, rot90 = (
        (np.flip, np.rot90) if isinstance(array, np.ndarray) else (torch.flip, torch.rot90)
    )
    array = rot90(array, -(turn >> 1), (-2, -1)) if turn >> 1 else array
    return flip(array, (-1,)) if turn & 1 else array


class CropSampler(torch.utils.data.Sampler):
    """Which crops an epoch trains on: yields (tile, top, left, turn) for PointDataset.

    Tiles that each fit in one crop (the synthetic scenes) give one crop per tile per epoch, in
    random order, like any dataset. Larger tiles give `crops_per_epoch` crops, by default enough
    to cover the training area once: ceil(Σ tile area / S²), a tile smaller than a crop counting
    as one crop. Each such crop is placed around a label, so that no batch is label-free:
      - clicks: one of the split's clicks at random, then a random crop position that contains
        it, so every click is trained on equally often, whatever the size of its tile;
      - a dense mask: a tile drawn in proportion to its area, then any position in it.
    (Where a split mixes the two, each kind gets crops in proportion to its tiles' area.)
    Tiles with no label at all are never cropped. Each crop gets a turn (`dihedral`): with
    augment="hflip" (the report's) a left-right mirror half the time, with "dihedral" any of the
    8 symmetries of the square. The order comes from `generator`; positions and turns from torch's
    global generator, which train.py seeds.
    """

    def __init__(
        self, point_labels, shapes, crop_size, crops_per_epoch=None, generator=None, augment="hflip"
    ):
        check_choice("augment", augment, AUGMENTATIONS)
        self.size, self.generator, self.augment = crop_size, generator, augment
        self.padded = [(max(h, crop_size), max(w, crop_size)) for h, w in shapes]
        area = sum(h * w for h, w in self.padded)
        self.crops = crops_per_epoch or math.ceil(area / crop_size**2)
        self.one_pass = self.crops == len(shapes) and all(
            p == (crop_size, crop_size) for p in self.padded
        )
        clicked = [i for i, labels in enumerate(point_labels) if isinstance(labels, Clicks)]
        dense = [
            i
            for i, labels in enumerate(point_labels)
            if not isinstance(labels, Clicks) and count_labels(labels)
        ]
        clicks = sum(point_labels[i].rows.size for i in clicked)
        click_area = sum(self.padded[i][0] * self.padded[i][1] for i in clicked)
        # one anchor per click (weight: its share of the clicked tiles' area), one per dense tile
        self.anchors = [
            (i, r, c)
            for i in clicked
            for r, c in zip(point_labels[i].rows.tolist(), point_labels[i].cols.tolist())
        ]
        self.anchors += [(i, -1, -1) for i in dense]
        self.weights = torch.tensor(
            [click_area / max(clicks, 1)] * clicks
            + [self.padded[i][0] * self.padded[i][1] for i in dense],
            dtype=torch.float64,
        )

    def __len__(self):
        return self.crops

    def __iter__(self):
        if self.one_pass:
            tiles = (
                (i, -1, -1)
                for i in torch.utils.data.RandomSampler(self.padded, generator=self.generator)
            )
        else:
            picks = torch.multinomial(
                self.weights, self.crops, replacement=True, generator=self.generator
            )
            tiles = [self.anchors[a] for a in picks.tolist()]
        for tile, row, col in tiles:
            (h, w) = self.padded[tile]
            top, left = window_start(h, self.size, row), window_start(w, self.size, col)
            turn = (
                int(torch.rand(()) < 0.5) if self.augment == "hflip" else int(torch.randint(8, ()))
            )
            yield tile, top, left, turn


def window_start(length, size, anchor):
    """A random start for a window of `size` along an axis of `length`: anywhere when anchor < 0,
    else such that the window covers pixel `anchor`."""
    low, high = (
        (0, length - size)
        if anchor < 0
        else (max(0, anchor - size + 1), min(anchor, length - size))
    )
    return int(torch.randint(low, high + 1, ()))


def band_statistics(images):
    """Per-band mean and std over every pixel of the training images, the normalisation the model
    applies (unet.py). Synthetic scenes and tile folders both go through here, so a folder
    exported from the generator trains to exactly the built-in numbers. Two passes over the
    tiles, one band of one tile at a time in float64: no copy of the whole split is ever made."""
    images = [np.asarray(image) for image in images]
    count = sum(image[0].size for image in images)
    mean = sum(np.array([band.sum(dtype=np.float64) for band in image]) for image in images) / count
    squares = sum(
        np.array([np.square(band - m, dtype=np.float64).sum() for band, m in zip(image, mean)])
        for image in images
    )
    return mean.tolist(), np.maximum(np.sqrt(squares / count), 1e-6).tolist()
