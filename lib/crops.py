"""Training crops: which windows of the training tiles an epoch sees, cut with their clicks.

`CropSampler` decides which crops an epoch trains on (around the clicks, so that no batch is
label-free) and in which of the 8 orientations of the square (`dihedral`); `PointDataset` cuts
them, image and clicks together, so every click stays on the pixel it labels; with a zoom, a crop
K times as large shrunk K times, so the network also learns the view the test tiles are shrunk to
(lib/evaluation.py's zoom_out: a roof wider than a window seen with its edges). `paste_boxes` moves
clicked patches into the other crops of a batch (train.py --paste); `photometric` shows each crop
as another sensor, season or haze might (train.py --photometric).
"""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms.functional import gaussian_blur

from clicks import Clicks, check_choice, count_labels, every_pixel
from pce import UNLABELED

AUGMENTATIONS = ("hflip", "dihedral")  # how training crops are turned (CropSampler)


class PointDataset(torch.utils.data.Dataset):
    """Training crops. An item is asked for by its place, (tile, top, left, turn) from CropSampler,
    and is (image float32 (B, S, S), point_labels int64 (S, S)). A place (tile, top, left, turn, K)
    is the crop of K*S px at (top, left) shrunk K times: each K x K block of pixels averaged
    (`shrink`), each block's click kept (`shrink_labels`).

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
        tile, top, left, turn, *zoom = place
        zoom = zoom[0] if zoom else 1
        size, stored, labels = self.crop_size * zoom, self.images[tile], self.point_labels[tile]
        # inside the tile
        h, w = (min(size, stored.shape[-2] - top), min(size, stored.shape[-1] - left))
        image = np.zeros((stored.shape[0], size, size), np.float32)
        image[:, :h, :w] = stored[:, top : top + h, left : left + w]
        if isinstance(labels, Clicks):
            point_labels = labels.point_labels((size, size), top, left)
        else:
            point_labels = np.full((size, size), UNLABELED, np.int64)
            point_labels[:h, :w] = every_pixel(labels[top : top + h, left : left + w])
        if zoom > 1:
            image, point_labels = shrink(image, zoom), shrink_labels(point_labels, zoom)
        image, point_labels = dihedral(image, turn), dihedral(point_labels, turn)
        item = (torch.from_numpy(image.copy()), torch.from_numpy(point_labels.copy()))
        if self.targets is None:
            return item
        target_labels = np.full((size, size), UNLABELED, np.int64)  # same crop, same turn
        target_labels[:h, :w] = every_pixel(self.targets[tile][top : top + h, left : left + w])
        target_labels = shrink_labels(target_labels, zoom) if zoom > 1 else target_labels
        return item + (torch.from_numpy(dihedral(target_labels, turn).copy()),)


def shrink(image, k):
    """A (B, H, W) tile k times smaller, (B, ceil(H/k), ceil(W/k)) float32: each k x k block of
    pixels averaged (the blocks of the last row and column may be cut short), a band at a time."""
    band = lambda b: torch.from_numpy(np.array(b, np.float32))[None, None]  # a copy, writable
    return np.concatenate([F.avg_pool2d(band(b), k, ceil_mode=True)[0].numpy() for b in image])


def shrink_labels(point_labels, k):
    """An (H, W) label plane k times smaller (H and W multiples of k): each k x k block takes the
    label of a labelled pixel in it (the last in reading order; clicks are so sparse that a block
    rarely holds two), UNLABELED where it has none."""
    shrunk = np.full((point_labels.shape[0] // k, point_labels.shape[1] // k), UNLABELED)
    for dy in range(k):
        for dx in range(k):
            block = point_labels[dy::k, dx::k]
            shrunk = np.where(block != UNLABELED, block, shrunk)
    return shrunk


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
    8 symmetries of the square. With zoom_out K > 1, half the crops of tiles that hold K*S px
    (drawn at random) are K*S px around their label, for PointDataset to shrink K times. The
    order comes from `generator`; positions, turns and zooms from torch's global generator, which
    train.py seeds.
    """

    def __init__(
        self,
        point_labels,
        shapes,
        crop_size,
        crops_per_epoch=None,
        generator=None,
        augment="hflip",
        zoom_out=1,
    ):
        check_choice("augment", augment, AUGMENTATIONS)
        self.size, self.generator, self.augment = crop_size, generator, augment
        self.padded = [(max(h, crop_size), max(w, crop_size)) for h, w in shapes]
        self.zoom_out, side = zoom_out, zoom_out * crop_size
        self.zoomable = [min(p) >= side for p in self.padded]
        self.zooms = f", half of them {side} px shrunk {zoom_out}x" if zoom_out > 1 else ""
        if zoom_out > 1 and not any(self.zoomable):
            raise ValueError(
                f"--train-zoom-out {zoom_out} needs training tiles of at least {side}x{side} px "
                f"({zoom_out} x --image-size {crop_size}); the largest is "
                f"{'x'.join(map(str, max(shapes, key=lambda s: s[0] * s[1])))}"
            )
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
            zoom = 1  # drawn only with zoom_out: the same seed crops as before without it
            if self.zoom_out > 1 and self.zoomable[tile] and torch.rand(()) < 0.5:
                zoom = self.zoom_out
            side = self.size * zoom
            top, left = window_start(h, side, row), window_start(w, side, col)
            turn = (
                int(torch.rand(()) < 0.5) if self.augment == "hflip" else int(torch.randint(8, ()))
            )
            yield (tile, top, left, turn) + ((zoom,) if zoom > 1 else ())


def window_start(length, size, anchor):
    """A random start for a window of `size` along an axis of `length`: anywhere when anchor < 0,
    else such that the window covers pixel `anchor`."""
    low, high = (
        (0, length - size)
        if anchor < 0
        else (max(0, anchor - size + 1), min(anchor, length - size))
    )
    return int(torch.randint(low, high + 1, ()))


def paste_boxes(boxes, images, *label_maps):
    """Context decoupling (copy-paste, as in Su et al. 2021 and Ghiasi et al. 2021): into each crop
    of a batch (N, B, S, S), `boxes` squares of side S/8 to S/4, each cut from another crop of the
    batch around one of its clicks (the first of `label_maps`; anywhere if it has none), pasted
    at a random place, every label map going with its pixels. A clicked patch then sits in a
    context it was not clicked in, so its class must be told from the patch itself: a network
    that learns "inside a district is Urban" is corrected by a patch of Bare Soil pasted there.
    Returns the images (float) and label maps of that batch. Drawn from torch's global generator,
    which train.py seeds."""
    n, _, size, _ = images.shape
    images, label_maps = images.float(), [labels.to(images.device) for labels in label_maps]
    pasted, pasted_labels = images.clone(), [labels.clone() for labels in label_maps]
    clicks = [(labels != UNLABELED).nonzero() for labels in label_maps[0]]  # (row, col) per crop
    for i in range(n * boxes if n > 1 else 0):
        into = i // boxes
        source = (into + int(torch.randint(1, n, ()))) % n  # any crop but this one
        side = int(torch.randint(size // 8, size // 4 + 1, ()))
        clicked = clicks[source]
        if len(clicked):  # the box's centre: one of the source's clicks
            r, c = clicked[int(torch.randint(len(clicked), ()))].tolist()
        else:
            r, c = torch.randint(size, (2,)).tolist()
        top = min(max(r - side // 2, 0), size - side)
        left = min(max(c - side // 2, 0), size - side)
        y, x = torch.randint(0, size - side + 1, (2,)).tolist()
        cut = (slice(top, top + side), slice(left, left + side))
        put = (slice(y, y + side), slice(x, x + side))
        pasted[into][(slice(None), *put)] = images[source][(slice(None), *cut)]
        for labels, original in zip(pasted_labels, label_maps):
            labels[into][put] = original[source][cut]
    return (pasted, *pasted_labels)


def photometric(images, strength):
    """Each training crop of a batch (N, B, S, S) as another sensor, season or haze might show it:
    its contrast about its own mean and its brightness each scaled by a factor drawn from
    [1 - strength, 1 + strength], each band's gain by one from [1 - strength/2, 1 + strength/2]
    (a colour cast), and half of the crops blurred (a Gaussian of 0.5 to 1.5 px). Scene-to-scene
    change on real imagery is mostly this (a held-out set's val and test come from other scenes),
    and a network that learnt one scene's colours of a class misses it in the next. The clicks
    stay where they are: nothing moves. In the stored units (the model standardises after), never
    below 0. Drawn from torch's global generator, which train.py seeds (and --resume restores)."""
    n, bands = images.shape[:2]
    images = images.float()
    mean = images.mean((2, 3), keepdim=True)  # per crop and band
    contrast = between(1 - strength, 1 + strength, (n, 1, 1, 1))
    brightness = between(1 - strength, 1 + strength, (n, 1, 1, 1))
    cast = between(1 - strength / 2, 1 + strength / 2, (n, bands, 1, 1))
    images = ((mean + contrast * (images - mean)) * brightness * cast).clamp_min(0)
    blurred = torch.rand(n) < 0.5
    sigmas = between(0.5, 1.5, (n,))
    for i in blurred.nonzero().flatten().tolist():
        images[i] = gaussian_blur(images[i], [7, 7], [float(sigmas[i])] * 2)
    return images


def between(low, high, shape):
    """Uniform draws in [low, high) of that shape, from torch's global generator."""
    return low + (high - low) * torch.rand(shape)
