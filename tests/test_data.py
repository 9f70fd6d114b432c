"""data.py: the synthetic scenes: shapes, classes, the fourth band, the same for the same seed."""

import numpy as np

from data import CLASSES, ROAD, make_split, split_scene


def test_split_shapes_and_types():
    images, masks = make_split("val", 3, seed=0, image_size=64)
    assert images.shape == (3, 3, 64, 64) and images.dtype == np.uint8  # 8-bit, as a sensor
    assert masks.shape == (3, 64, 64) and masks.dtype == np.uint8
    assert images.max() > 100 and masks.max() < len(CLASSES)


def test_same_seed_same_scenes_and_splits_independent():
    a, b = (
        make_split("test", 4, seed=3, image_size=64),
        make_split("test", 4, seed=3, image_size=64),
    )
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], make_split("test", 4, seed=4, image_size=64)[1])
    assert not np.array_equal(a[1], make_split("val", 4, seed=3, image_size=64)[1])
    # a bigger split starts with the same scenes: sizes never reshuffle the data
    assert np.array_equal(make_split("test", 6, seed=3, image_size=64)[1][:4], a[1])


def test_every_class_occurs_and_roads_are_a_thin_minority(train_split):
    _, masks = train_split
    fractions = np.bincount(masks.ravel(), minlength=len(CLASSES)) / masks.size
    assert (fractions > 0.01).all(), fractions
    assert fractions[ROAD] < 0.1 and fractions[ROAD] < fractions.max() / 4
    # thin: almost no road pixel sits inside a 5 x 5 block of road (only crossings do)
    road = masks == ROAD
    blocks = np.lib.stride_tricks.sliding_window_view(road, (5, 5), axis=(1, 2)).all(axis=(-1, -2))
    assert blocks.sum() < 0.02 * road.sum()


def test_a_fourth_band_leaves_the_rgb_bands_and_the_mask_unchanged():
    rgb, mask = split_scene("val", 2, seed=1, image_size=64)
    four, mask4 = split_scene("val", 2, seed=1, image_size=64, bands=4)
    assert (
        four.shape == (4, 64, 64) and np.array_equal(four[:3], rgb) and np.array_equal(mask4, mask)
    )
    water, vegetation = four[3][mask == 2].mean(), four[3][mask == 1].mean()
    assert water < vegetation  # near infrared: dark over water, bright over plants
