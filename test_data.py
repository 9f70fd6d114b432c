"""data.py: synthetic scenes, the clicks sampled on them, and the Dataset that serves them."""
import numpy as np
import pytest
import torch

from data import (CLASSES, IGNORE, ROAD, PointDataset, make_split, sample_points, sample_split_points)


@pytest.fixture(scope="module")
def train_split():
    return make_split("train", 24, seed=0, image_size=128)


def test_split_shapes_and_types():
    images, masks = make_split("val", 3, seed=0, image_size=64)
    assert images.shape == (3, 3, 64, 64) and images.dtype == np.uint8        # 8-bit, as a sensor
    assert masks.shape == (3, 64, 64) and masks.dtype == np.uint8
    assert images.max() > 100 and masks.max() < len(CLASSES)


def test_same_seed_same_scenes_and_splits_independent():
    a, b = make_split("test", 4, seed=3, image_size=64), make_split("test", 4, seed=3, image_size=64)
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


def test_points_per_image_exact_count_and_labels_match_mask(train_split):
    _, masks = train_split
    rng = np.random.default_rng(0)
    for n in (1, 50, 1000):
        labels = sample_points(masks[0], rng, points_per_image=n)
        assert (labels >= 0).sum() == n
        assert np.array_equal(labels[labels >= 0], masks[0][labels >= 0])
        assert labels.dtype == np.int64 and set(np.unique(labels)) <= set(range(-1, len(CLASSES)))


@pytest.mark.parametrize("strategy", ["random", "stratified"])
def test_points_per_class_exact_counts(train_split, strategy):
    _, masks = train_split
    rng = np.random.default_rng(1)
    for mask in masks[:8]:
        labels = sample_points(mask, rng, points_per_class=10, strategy=strategy)
        for c in range(len(CLASSES)):
            assert (labels == c).sum() == min(10, (mask == c).sum())
        assert np.array_equal(labels[labels >= 0], mask[labels >= 0])


def test_small_class_gives_all_its_pixels():
    mask = np.zeros((32, 32), np.uint8)
    mask[3, 4] = mask[10, 10] = 2
    labels = sample_points(mask, np.random.default_rng(0), points_per_class=5, strategy="stratified")
    assert (labels == 2).sum() == 2 and (labels == 0).sum() == 5


def test_ignored_pixels_are_never_clicked():
    mask = np.full((16, 16), IGNORE, np.uint8)
    mask[:4] = 1
    labels = sample_points(mask, np.random.default_rng(0), points_per_image=64)
    assert (labels[:4] == 1).all() and (labels[4:] == -1).all()
    with pytest.raises(ValueError, match="65 points per image asked, but the image has only 64"):
        sample_points(mask, np.random.default_rng(0), points_per_image=65)


def mean_nearest_neighbour_distance(points):
    d = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    return d.min(1).mean()


def test_stratified_points_are_more_spread_out_than_random(train_split):
    _, masks = train_split
    spread = {"random": [], "stratified": []}
    for strategy in spread:
        rng = np.random.default_rng(7)
        for mask in masks:
            labels = sample_points(mask, rng, points_per_class=10, strategy=strategy)
            for c in range(len(CLASSES)):
                if (mask == c).sum() > 10:
                    spread[strategy].append(mean_nearest_neighbour_distance(np.argwhere(labels == c)))
    random_nn, stratified_nn = np.mean(spread["random"]), np.mean(spread["stratified"])
    assert stratified_nn > 1.15 * random_nn, (random_nn, stratified_nn)


@pytest.mark.parametrize("kwargs, message", [
    (dict(points_per_image=20000), "20000 points per image asked"),
    (dict(points_per_image=0), "positive integer, got 0"),
    (dict(points_per_class=-3), "positive integer, got -3"),
    (dict(points_per_class=5, strategy="grid"), "unknown strategy 'grid'"),
    (dict(), "exactly one"),
    (dict(points_per_image=5, points_per_class=5), "exactly one"),
])
def test_bad_sampling_requests(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sample_points(np.zeros((128, 128), np.uint8), np.random.default_rng(0), **kwargs)


def test_split_points_are_drawn_once_and_reproducibly(train_split):
    _, masks = train_split
    a = sample_split_points(masks[:4], 0, points_per_image=30)
    b = sample_split_points(masks[:4], 0, points_per_image=30)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], a[1])        # each image its own clicks


def test_dataset_flips_image_points_and_mask_together(train_split):
    images, masks = train_split
    points = sample_split_points(masks[:2], 0, points_per_image=200)
    dataset = PointDataset(images[:2], points, masks[:2], crop_size=128, flip=True)
    torch.manual_seed(0)
    flipped = 0
    for _ in range(20):
        image, point_labels, dense_mask = dataset[0]
        assert image.shape == (3, 128, 128) and point_labels.dtype == dense_mask.dtype == torch.int64
        labeled = point_labels >= 0
        assert (point_labels[labeled] == dense_mask[labeled]).all() and labeled.sum() == 200
        is_flipped = torch.equal(image, torch.from_numpy(images[0]).flip(-1))
        assert is_flipped or torch.equal(image, torch.from_numpy(images[0]))
        assert torch.equal(dense_mask, torch.from_numpy(masks[0].astype(np.int64)).flip(-1) if is_flipped
                           else torch.from_numpy(masks[0].astype(np.int64)))
        flipped += is_flipped
    assert 0 < flipped < 20


def test_random_crop_keeps_clicks_on_their_pixels_and_pads_small_tiles():
    rng = np.random.default_rng(0)
    image = rng.random((3, 40, 90)).astype(np.float32)
    mask = rng.integers(0, 5, (40, 90)).astype(np.uint8)
    points = sample_points(mask, rng, points_per_image=300)
    dataset = PointDataset([image], [points], [mask], crop_size=64)
    torch.manual_seed(0)
    for _ in range(5):
        crop, point_labels, dense_mask = dataset[0]
        assert crop.shape == (3, 64, 64)
        assert (dense_mask[40:] == IGNORE).all() and (point_labels[40:] == -1).all()  # padding is unlabeled
        labeled = point_labels >= 0
        assert (point_labels[labeled] == dense_mask[labeled]).all()
