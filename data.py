"""Synthetic land-cover scenes: the tutorial's data (numpy only).

A scene is a 3-band image and its dense class mask, built the way land cover looks from above:
large smooth fields of vegetation and bare soil, water as lakes or a meandering river, compact
urban districts of rectangular buildings, and thin (1-4 px) roads crossing the whole scene. Each
class has a spectral signature; every scene jitters it (illumination, season), adds within-class
texture and Gaussian sensor noise, and quantises to 8-bit digital numbers (0-255) like a real
sensor. Pixels alone are ambiguous (roads vs. urban vs. bare soil), so the network has to use
spatial context.

Each scene comes with its dense class mask. The masks are for scoring, and for drawing the clicks
an annotator would make (clicks.py); training never sees them whole.
"""

import functools

import numpy as np

CLASSES = ("Urban", "Vegetation", "Water", "Bare Soil", "Road")
URBAN, VEGETATION, WATER, BARE_SOIL, ROAD = range(len(CLASSES))
COLOURS = (
    "#d62728",
    "#2ca02c",
    "#1f77b4",
    "#c8a064",
    "#7f7f7f",
)  # how previews and figures draw them
IGNORE = 255  # "unknown" in a dense mask: never sampled, never scored
SPLITS = {"train": 0, "val": 1, "test": 2}

# mean reflectance per class in three bands (R, G, B), and the amplitude and grain (px) of its
# texture
SIGNATURES = np.array(
    [
        [0.60, 0.49, 0.45],  # Urban: bright, reddish roofs
        [0.22, 0.40, 0.18],  # Vegetation
        [0.10, 0.18, 0.32],  # Water
        [0.50, 0.43, 0.32],  # Bare Soil: close to urban in brightness
        [0.32, 0.32, 0.33],
    ]
)  # Road: dark grey asphalt
NEAR_INFRARED = np.array([[0.30], [0.55], [0.04], [0.38], [0.22]])  # vegetation bright, water dark
TEXTURE = np.array([0.07, 0.06, 0.02, 0.06, 0.03])
GRAIN = np.array([1.5, 3.0, 6.0, 4.0, 1.0])
NOISE_SIGMA = 0.05
SIGNATURE_JITTER = 0.035


def smooth_field(rng, shape, scale):
    """Gaussian-filtered white noise (correlation length ~scale px), standardised to mean 0, std
    1."""
    fy, fx = np.fft.fftfreq(shape[0])[:, None], np.fft.fftfreq(shape[1])[None, :]
    kernel = np.exp(-2 * (np.pi * scale) ** 2 * (fy**2 + fx**2))
    field = np.fft.ifft2(np.fft.fft2(rng.standard_normal(shape)) * kernel).real
    return (field - field.mean()) / (field.std() + 1e-12)


def stripe(rng, shape, width, through=None):
    """Pixels within width/2 of a gently curving line that crosses the whole scene (roads,
    rivers)."""
    h, w = shape
    theta = rng.uniform(0, np.pi)
    y, x = np.mgrid[0:h, 0:w].astype(float)
    along, across = x * np.cos(theta) + y * np.sin(theta), -x * np.sin(theta) + y * np.cos(theta)
    cy, cx = through if through is not None else (rng.uniform(0, h), rng.uniform(0, w))
    offset = -cx * np.sin(theta) + cy * np.cos(theta)
    bend = rng.uniform(0, 0.06 * max(h, w)) * np.sin(
        along / rng.uniform(0.3, 1.0) / max(h, w) * 2 * np.pi + rng.uniform(0, 2 * np.pi)
    )
    return np.abs(across - offset - bend) < width / 2


def make_scene(rng, shape=(128, 128)):
    """One scene: image (3, H, W) uint8, dense_mask (H, W) uint8."""
    h, w = shape
    size = max(h, w)
    dense_mask = np.where(
        smooth_field(rng, shape, size / 7) > rng.uniform(-0.6, 0.6), VEGETATION, BARE_SOIL
    )
    if rng.random() < 0.5:  # lakes
        dense_mask[smooth_field(rng, shape, size / 10) > rng.uniform(1.0, 1.6)] = WATER
    else:  # a river
        dense_mask[stripe(rng, shape, rng.uniform(4, 9))] = WATER
    districts = [
        (rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w)
        for _ in range(rng.integers(1, 4))
    ]
    for cy, cx in districts:  # compact blocks of buildings
        radius, spacing = rng.uniform(0.12, 0.25) * size, rng.integers(7, 12)
        for by in np.arange(cy - radius, cy + radius, spacing):
            for bx in np.arange(cx - radius, cx + radius, spacing):
                if rng.random() < 0.75 and (by - cy) ** 2 + (bx - cx) ** 2 < radius**2:
                    y0, x0 = int(by), int(bx)
                    y1, x1 = y0 + rng.integers(4, spacing), x0 + rng.integers(4, spacing)
                    block = dense_mask[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)]
                    block[block != WATER] = URBAN
    for i in range(rng.integers(1, 4)):  # roads, the first through a district
        dense_mask[stripe(rng, shape, rng.uniform(2.0, 4.5), districts[0] if i == 0 else None)] = (
            ROAD
        )
    return render(rng, dense_mask), dense_mask.astype(np.uint8)


def render(rng, dense_mask, signatures=SIGNATURES):
    signatures = signatures + rng.normal(0, SIGNATURE_JITTER, signatures.shape)
    image = signatures[dense_mask].transpose(2, 0, 1)  # (bands, H, W)
    for c in range(len(CLASSES)):
        texture = smooth_field(rng, dense_mask.shape, GRAIN[c]) * TEXTURE[c]
        image = image + np.where(dense_mask == c, texture, 0)
    image = image * rng.uniform(0.85, 1.15) + rng.normal(0, NOISE_SIGMA, image.shape)
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


@functools.lru_cache(maxsize=3)
def make_split(split, size, seed=0, image_size=128):
    """`size` scenes of a split: images (n, 3, S, S) uint8, dense masks (n, S, S) uint8. Made once
    per process (experiments.py trains a dozen configurations on the same scenes), so read-only."""
    scenes = [split_scene(split, i, seed, image_size) for i in range(size)]
    images = (
        np.stack([s[0] for s in scenes])
        if scenes
        else np.zeros((0, 3, image_size, image_size), np.uint8)
    )
    masks = (
        np.stack([s[1] for s in scenes])
        if scenes
        else np.zeros((0, image_size, image_size), np.uint8)
    )
    images.flags.writeable = masks.flags.writeable = False
    return images, masks


def split_scene(split, index, seed=0, image_size=128, bands=3):
    """Scene `index` of a split. It depends only on (seed, split, index), so growing the train
    split leaves val and test unchanged. bands=4 adds a near-infrared band (RGB+NIR), drawn from
    a random stream of its own, so the first three bands are the same either way."""
    image, dense_mask = make_scene(
        np.random.default_rng([seed, SPLITS[split], index]), (image_size, image_size)
    )
    if bands == 4:
        rng = np.random.default_rng([seed, SPLITS[split], index, 4])
        image = np.concatenate([image, render(rng, dense_mask, NEAR_INFRARED)])
    return image, dense_mask
