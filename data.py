"""Synthetic land-cover scenes and the clicks an annotator would make on them (numpy only).

A scene is a 3-band image and its dense class mask, built the way land cover looks from above:
large smooth fields of vegetation and bare soil, water as lakes or a meandering river, compact
urban districts of rectangular buildings, and thin (1-4 px) roads crossing the whole scene. Each
class has a spectral signature; every scene jitters it (illumination, season), adds within-class
texture and Gaussian sensor noise, and quantises to 8-bit digital numbers (0-255) like a real
sensor. Pixels alone are ambiguous (roads vs. urban vs. bare soil), so the network has to use
spatial context.

Dense masks are for evaluation only. Training sees `point_labels`: -1 everywhere except at the
clicked pixels, sampled once per training image and then kept fixed, as an annotator clicks once.

    python data.py export DIR      writes these splits as a folder of PNG tiles (see tiles.py)
"""
import math

import numpy as np
import torch

CLASSES = ("Urban", "Vegetation", "Water", "Bare Soil", "Road")
URBAN, VEGETATION, WATER, BARE_SOIL, ROAD = range(len(CLASSES))
IGNORE = 255                    # "unknown" in a dense mask: never sampled, never scored
SPLITS = {"train": 0, "val": 1, "test": 2}

# mean reflectance per class in three bands (R, G, B), and the amplitude and grain (px) of its texture
SIGNATURES = np.array([[0.60, 0.49, 0.45],    # Urban: bright, reddish roofs
                       [0.22, 0.40, 0.18],    # Vegetation
                       [0.10, 0.18, 0.32],    # Water
                       [0.50, 0.43, 0.32],    # Bare Soil: close to urban in brightness
                       [0.32, 0.32, 0.33]])   # Road: dark grey asphalt
TEXTURE = np.array([0.07, 0.06, 0.02, 0.06, 0.03])
GRAIN = np.array([1.5, 3.0, 6.0, 4.0, 1.0])
NOISE_SIGMA = 0.05
SIGNATURE_JITTER = 0.035


def smooth_field(rng, shape, scale):
    """Gaussian-filtered white noise (correlation length ~scale px), standardised to mean 0, std 1."""
    fy, fx = np.fft.fftfreq(shape[0])[:, None], np.fft.fftfreq(shape[1])[None, :]
    kernel = np.exp(-2 * (np.pi * scale) ** 2 * (fy ** 2 + fx ** 2))
    field = np.fft.ifft2(np.fft.fft2(rng.standard_normal(shape)) * kernel).real
    return (field - field.mean()) / (field.std() + 1e-12)


def band(rng, shape, width, through=None):
    """Pixels within width/2 of a gently curving line that crosses the whole scene (roads, rivers)."""
    h, w = shape
    theta = rng.uniform(0, np.pi)
    y, x = np.mgrid[0:h, 0:w].astype(float)
    along, across = x * np.cos(theta) + y * np.sin(theta), -x * np.sin(theta) + y * np.cos(theta)
    cy, cx = through if through is not None else (rng.uniform(0, h), rng.uniform(0, w))
    offset = -cx * np.sin(theta) + cy * np.cos(theta)
    bend = rng.uniform(0, 0.06 * max(h, w)) * np.sin(along / rng.uniform(0.3, 1.0) / max(h, w) * 2 * np.pi
                                                     + rng.uniform(0, 2 * np.pi))
    return np.abs(across - offset - bend) < width / 2


def make_scene(rng, shape=(128, 128)):
    """One scene: image (3, H, W) uint8, dense_mask (H, W) uint8."""
    h, w = shape
    size = max(h, w)
    dense_mask = np.where(smooth_field(rng, shape, size / 7) > rng.uniform(-0.6, 0.6), VEGETATION, BARE_SOIL)
    if rng.random() < 0.5:                                              # lakes
        dense_mask[smooth_field(rng, shape, size / 10) > rng.uniform(1.0, 1.6)] = WATER
    else:                                                               # a river
        dense_mask[band(rng, shape, rng.uniform(4, 9))] = WATER
    districts = [(rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w) for _ in range(rng.integers(1, 4))]
    for cy, cx in districts:                                            # compact blocks of buildings
        radius, spacing = rng.uniform(0.12, 0.25) * size, rng.integers(7, 12)
        for by in np.arange(cy - radius, cy + radius, spacing):
            for bx in np.arange(cx - radius, cx + radius, spacing):
                if rng.random() < 0.75 and (by - cy) ** 2 + (bx - cx) ** 2 < radius ** 2:
                    y0, x0 = int(by), int(bx)
                    y1, x1 = y0 + rng.integers(4, spacing), x0 + rng.integers(4, spacing)
                    block = dense_mask[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)]
                    block[block != WATER] = URBAN
    for i in range(rng.integers(1, 4)):                                 # roads, the first through a district
        dense_mask[band(rng, shape, rng.uniform(2.0, 4.5), districts[0] if i == 0 else None)] = ROAD
    return render(rng, dense_mask), dense_mask.astype(np.uint8)


def render(rng, dense_mask):
    signatures = SIGNATURES + rng.normal(0, SIGNATURE_JITTER, SIGNATURES.shape)
    image = signatures[dense_mask].transpose(2, 0, 1)                  # (3, H, W)
    for c in range(len(CLASSES)):
        texture = smooth_field(rng, dense_mask.shape, GRAIN[c]) * TEXTURE[c]
        image = image + np.where(dense_mask == c, texture, 0)
    image = image * rng.uniform(0.85, 1.15) + rng.normal(0, NOISE_SIGMA, image.shape)
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def make_split(split, size, seed=0, image_size=128):
    """`size` scenes of a split: images (n, 3, S, S) uint8, dense masks (n, S, S) uint8.
    Scene i of a split depends only on (seed, split, i), so growing the train split leaves
    val and test unchanged."""
    scenes = [make_scene(np.random.default_rng([seed, SPLITS[split], i]), (image_size, image_size))
              for i in range(size)]
    images = np.stack([s[0] for s in scenes]) if scenes else np.zeros((0, 3, image_size, image_size), np.uint8)
    masks = np.stack([s[1] for s in scenes]) if scenes else np.zeros((0, image_size, image_size), np.uint8)
    return images, masks


def band_statistics(images):
    """Per-band mean and std over every pixel of the training images, the normalisation the model
    applies (unet.py). Synthetic scenes and tile folders both go through here, so a folder
    exported from the generator trains to exactly the built-in numbers."""
    pixels = np.concatenate([np.asarray(i, np.float32).reshape(len(i), -1) for i in images], axis=1)
    return pixels.mean(1, dtype=np.float64).tolist(), np.maximum(pixels.std(1, dtype=np.float64), 1e-6).tolist()


def sample_points(dense_mask, rng, points_per_image=None, points_per_class=None, strategy="random"):
    """Clicks on one image: (H, W) int64, the class at each clicked pixel and -1 elsewhere.

    points_per_image=N: N pixels uniformly at random. points_per_class=K: K pixels of every class
    present (all of them if a class has fewer), chosen at random or, with strategy="stratified",
    spread over the class's extent: its bounding box is cut into a grid of ~K cells and the
    clicks go round the cells, one per cell per round. Pixels marked IGNORE are never clicked.
    """
    if (points_per_image is None) == (points_per_class is None):
        raise ValueError("give exactly one of points_per_image and points_per_class")
    if strategy not in ("random", "stratified"):
        raise ValueError(f"unknown strategy {strategy!r}: use 'random' or 'stratified'")
    count = points_per_image if points_per_class is None else points_per_class
    if int(count) != count or count < 1:
        raise ValueError(f"number of points must be a positive integer, got {count}")
    flat = dense_mask.reshape(-1)
    point_labels = np.full(flat.shape, -1, dtype=np.int64)
    if points_per_image is not None:
        candidates = np.flatnonzero(flat != IGNORE)
        if points_per_image > len(candidates):
            raise ValueError(f"{points_per_image} points per image asked, but the image has only "
                             f"{len(candidates)} labeled pixels ({dense_mask.shape[0]}x{dense_mask.shape[1]})")
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
    chosen = np.concatenate(chosen)
    point_labels[chosen] = flat[chosen]
    return point_labels.reshape(dense_mask.shape)


def spread_choice(rng, pixels, k, width):
    """k of the flat pixel indices, spread in space: one per grid cell, round after round."""
    ys, xs = np.divmod(pixels, width)
    grid = math.ceil(math.sqrt(k))
    cell_y = (ys - ys.min()) * grid // (ys.max() - ys.min() + 1)
    cell_x = (xs - xs.min()) * grid // (xs.max() - xs.min() + 1)
    cell = cell_y * grid + cell_x
    order = rng.permutation(len(pixels))                   # random pick inside each cell...
    by_cell = order[np.argsort(cell[order], kind="stable")]
    starts = np.flatnonzero(np.r_[True, np.diff(cell[by_cell]) != 0])
    round_number = np.empty(len(pixels), dtype=np.int64)    # ...and its turn: 0 for a cell's first pixel
    round_number[by_cell] = np.arange(len(pixels)) - np.repeat(starts, np.diff(np.r_[starts, len(pixels)]))
    cell_turn = rng.permutation(grid * grid)[cell]          # cells take turns in random order each round
    return pixels[np.argsort(round_number * grid * grid + cell_turn, kind="stable")[:k]]


def every_pixel(dense_mask):
    """Dense supervision written as point labels: every known pixel is a click."""
    return np.where(dense_mask == IGNORE, -1, dense_mask).astype(np.int64)


def sample_split_points(dense_masks, seed, **how):
    """Clicks for every image of a split, drawn once from one seeded generator."""
    rng = np.random.default_rng([seed, 1000])
    return [sample_points(m, rng, **how) for m in dense_masks]


class PointDataset(torch.utils.data.Dataset):
    """Yields (image, point_labels, dense_mask) as float32 (B, S, S), int64 (S, S), int64 (S, S).

    With `crop_size` every item is a random S x S crop of its tile (tiles smaller than S are padded
    with unlabeled pixels); with `flip` it is mirrored left-right half of the time. Both apply to
    the three arrays together, so the clicks stay on the pixels they label.
    """

    def __init__(self, images, point_labels, dense_masks, crop_size=None, flip=False):
        self.images, self.point_labels, self.dense_masks = images, point_labels, dense_masks
        self.crop_size, self.flip = crop_size, flip

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        image = torch.as_tensor(np.asarray(self.images[i], dtype=np.float32))
        point_labels = torch.as_tensor(np.asarray(self.point_labels[i], dtype=np.int64))
        dense_mask = torch.as_tensor(np.asarray(self.dense_masks[i], dtype=np.int64))
        if self.crop_size is not None:
            image, point_labels, dense_mask = random_crop(self.crop_size, image, point_labels, dense_mask)
        if self.flip and torch.rand(()) < 0.5:
            image, point_labels, dense_mask = image.flip(-1), point_labels.flip(-1), dense_mask.flip(-1)
        return image, point_labels, dense_mask


def random_crop(size, image, point_labels, dense_mask):
    h, w = dense_mask.shape
    pad_h, pad_w = max(size - h, 0), max(size - w, 0)
    if pad_h or pad_w:
        image = torch.nn.functional.pad(image, (0, pad_w, 0, pad_h))
        point_labels = torch.nn.functional.pad(point_labels, (0, pad_w, 0, pad_h), value=-1)
        dense_mask = torch.nn.functional.pad(dense_mask, (0, pad_w, 0, pad_h), value=IGNORE)
    y = int(torch.randint(0, dense_mask.shape[0] - size + 1, ()))
    x = int(torch.randint(0, dense_mask.shape[1] - size + 1, ()))
    return image[..., y:y + size, x:x + size], point_labels[y:y + size, x:x + size], dense_mask[y:y + size, x:x + size]


if __name__ == "__main__":
    import tiles
    tiles.export_main()
