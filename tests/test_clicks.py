"""clicks.py: the clicks sampled from a mask, kept once, and the class weights of their counts."""

import numpy as np
import pytest

from clicks import Clicks, class_weights, sample_points, sample_split_points
from data import CLASSES, IGNORE


def test_points_per_image_exact_count_and_labels_match_mask(train_split):
    _, masks = train_split
    rng = np.random.default_rng(0)
    for n in (1, 50, 1000):
        labels = plane(masks[0], rng=rng, points_per_image=n)
        assert (labels >= 0).sum() == n
        assert np.array_equal(labels[labels >= 0], masks[0][labels >= 0])
        assert labels.dtype == np.int64 and set(np.unique(labels)) <= set(range(-1, len(CLASSES)))


@pytest.mark.parametrize("strategy", ["random", "stratified"])
def test_points_per_class_exact_counts(train_split, strategy):
    _, masks = train_split
    rng = np.random.default_rng(1)
    for mask in masks[:8]:
        labels = plane(mask, rng=rng, points_per_class=10, strategy=strategy)
        for c in range(len(CLASSES)):
            assert (labels == c).sum() == min(10, (mask == c).sum())
        assert np.array_equal(labels[labels >= 0], mask[labels >= 0])


def test_small_class_gives_all_its_pixels():
    mask = np.zeros((32, 32), np.uint8)
    mask[3, 4] = mask[10, 10] = 2
    labels = plane(mask, points_per_class=5, strategy="stratified")
    assert (labels == 2).sum() == 2 and (labels == 0).sum() == 5


def test_ignored_pixels_are_never_clicked():
    mask = np.full((16, 16), IGNORE, np.uint8)
    mask[:4] = 1
    labels = plane(mask, points_per_image=64)
    assert (labels[:4] == 1).all() and (labels[4:] == -1).all()
    with pytest.raises(ValueError, match="65 points per image asked, but the image has only 64"):
        sample_points(mask, np.random.default_rng(0), points_per_image=65)


def test_stratified_points_are_more_spread_out_than_random(train_split):
    _, masks = train_split
    spread = {"random": [], "stratified": []}
    for strategy in spread:
        rng = np.random.default_rng(7)
        for mask in masks:
            labels = plane(mask, rng=rng, points_per_class=10, strategy=strategy)
            for c in range(len(CLASSES)):
                if (mask == c).sum() > 10:
                    spread[strategy].append(
                        mean_nearest_neighbour_distance(np.argwhere(labels == c))
                    )
    random_nn, stratified_nn = np.mean(spread["random"]), np.mean(spread["stratified"])
    assert stratified_nn > 1.15 * random_nn, (random_nn, stratified_nn)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(points_per_image=20000), "20000 points per image asked"),
        (dict(points_per_image=0), "positive integer, got 0"),
        (dict(points_per_class=-3), "positive integer, got -3"),
        (dict(points_per_class=5, strategy="grid"), "unknown strategy 'grid'"),
        (dict(), "exactly one"),
        (dict(points_per_image=5, points_per_class=5), "exactly one"),
    ],
)
def test_bad_sampling_requests(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sample_points(np.zeros((128, 128), np.uint8), np.random.default_rng(0), **kwargs)


def test_split_points_are_drawn_once_and_reproducibly(train_split):
    _, masks = train_split
    a = sample_split_points(masks[:4], 0, points_per_image=30)
    b = sample_split_points(masks[:4], 0, points_per_image=30)
    assert all(
        np.array_equal(x.point_labels((128, 128)), y.point_labels((128, 128))) for x, y in zip(a, b)
    )
    # each its own clicks
    assert not np.array_equal(a[0].point_labels((128, 128)), a[1].point_labels((128, 128)))


def test_class_weights_are_inverse_shares_averaging_one():
    # class 0: 3 labels, class 1: 1 label, class 2: none -> shares 3/4 and 1/4
    clicks = Clicks(np.zeros(3, np.int64), np.arange(3), np.array([0, 0, 1]))
    dense = np.array([[0, 255], [255, 255]], np.uint8)
    weights = class_weights([clicks, dense], 3)
    assert weights.tolist() == pytest.approx([0.5, 1.5, 1.0])


def plane(mask, **how):
    """sample_points as an (H, W) label plane: -1 unlabeled, else the class."""
    return sample_points(mask, how.pop("rng", np.random.default_rng(0)), **how).point_labels(
        mask.shape
    )


def mean_nearest_neighbour_distance(points):
    d = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    return d.min(1).mean()
