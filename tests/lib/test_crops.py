"""lib/crops.py: the training crops cut around the clicks, turned with them, zoomed and pasted."""

import numpy as np
import pytest
import torch

from clicks import Clicks, every_pixel, sample_points, sample_split_points
from data import IGNORE
from lib.crops import (
    CropSampler,
    PointDataset,
    dihedral,
    paste_boxes,
    photometric,
    shrink,
    shrink_labels,
    undo_dihedral,
)


def test_dataset_turns_image_and_clicks_together(train_split):
    images, masks = train_split
    points = sample_split_points(masks[:1], 0, points_per_image=200)
    dataset = PointDataset(images[:1], points, crop_size=128)
    for turn in range(8):
        image, point_labels = dataset[0, 0, 0, turn]
        assert (
            image.shape == (3, 128, 128)
            and image.dtype == torch.float32
            and point_labels.dtype == torch.int64
        )
        expected_image, expected_mask = (
            torch.tensor(images[0]).float(),
            torch.tensor(masks[0].astype(np.int64)),
        )
        if turn & 1:  # the mirror first ...
            expected_image, expected_mask = expected_image.flip(-1), expected_mask.flip(-1)
        # ... then quarter turns (counter-clockwise)
        expected_image = expected_image.rot90(turn >> 1, (1, 2))
        expected_mask = expected_mask.rot90(turn >> 1, (0, 1))
        assert torch.equal(image, expected_image)
        labeled = point_labels >= 0
        assert labeled.sum() == 200 and torch.equal(point_labels[labeled], expected_mask[labeled])


def test_crops_keep_clicks_on_their_pixels_and_pad_small_tiles():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (3, 40, 90)).astype(np.uint8)  # stored as uint8, served as float
    mask = rng.integers(0, 5, (40, 90)).astype(np.uint8)
    dataset = PointDataset([image], [sample_points(mask, rng, points_per_image=300)], crop_size=64)
    sampler = CropSampler(dataset.point_labels, [mask.shape], 64)
    assert sampler.padded == [(64, 90)] and len(sampler) == 2  # ceil(64 * 90 / 64²) crops
    torch.manual_seed(0)
    for place in list(sampler) * 3:
        tile, top, left, turn = place
        crop, point_labels = dataset[place]
        assert crop.shape == (3, 64, 64) and top == 0 and 0 <= left <= 90 - 64 and turn in (0, 1)
        truth = torch.from_numpy(
            np.pad(mask, ((0, 24), (0, 0)), constant_values=IGNORE)[:, left : left + 64].astype(
                np.int64
            )
        )
        truth = truth.flip(-1) if turn else truth
        assert (point_labels[truth == IGNORE] == -1).all()  # padding is unlabeled
        labeled = point_labels >= 0
        assert labeled.any() and torch.equal(point_labels[labeled], truth[labeled])


def test_dense_labels_turn_unknown_pixels_into_minus_one():
    mask = np.array([[0, 255], [4, 255]], np.uint8)
    assert every_pixel(mask).tolist() == [[0, -1], [4, -1]]  # not 255: the uint8 trap
    image = np.zeros((3, 2, 2), np.uint8)
    _, point_labels = PointDataset([image], [mask], crop_size=32)[0, 0, 0, False]
    assert point_labels[:2, :2].tolist() == [[0, -1], [4, -1]] and (point_labels[2:] == -1).all()


def test_big_tiles_every_crop_holds_a_click_and_an_epoch_covers_the_area():
    shapes = [(1000, 700), (300, 260), (64, 64)]
    clicks = [
        Clicks(np.array([5, 990]), np.array([690, 3]), np.array([1, 2])),
        Clicks(np.array([150]), np.array([100]), np.array([0])),
        Clicks(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)),
    ]  # no label: never cropped
    sampler = CropSampler(clicks, shapes, 64, generator=torch.Generator().manual_seed(0))
    assert len(sampler) == -(-(1000 * 700 + 300 * 260 + 64 * 64) // 64**2) == 191
    torch.manual_seed(0)
    places = list(sampler)
    assert len(places) == 191
    counts = np.zeros(3)
    for tile, top, left, _ in places:
        c = clicks[tile]
        inside = (c.rows >= top) & (c.rows < top + 64) & (c.cols >= left) & (c.cols < left + 64)
        assert (
            inside.any() and 0 <= top <= shapes[tile][0] - 64 and 0 <= left <= shapes[tile][1] - 64
        )
        counts[tile] += 1
    assert counts[2] == 0 and 30 < counts[1] < 100  # every click equally often: 1/3 of the crops
    assert len(CropSampler(clicks, shapes, 64, crops_per_epoch=10)) == 10


def test_dense_tiles_are_cropped_in_proportion_to_their_area():
    masks = [
        np.zeros((640, 640), np.uint8),
        np.zeros((64, 640), np.uint8),
        np.full((640, 64), IGNORE, np.uint8),
    ]
    sampler = CropSampler(
        masks,
        [m.shape for m in masks],
        64,
        crops_per_epoch=2000,
        generator=torch.Generator().manual_seed(0),
    )
    tiles = np.bincount([place[0] for place in sampler], minlength=3)
    assert tiles[2] == 0 and 1700 < tiles[0] < 1930  # 10:1 by area; all-unknown tiles never


def test_tiles_that_fit_one_crop_are_each_seen_once_per_epoch():
    sampler = CropSampler(
        [None] * 5, [(32, 32)] * 5, 32, generator=torch.Generator().manual_seed(0)
    )
    assert sampler.one_pass and sorted(place[0] for place in sampler) == [0, 1, 2, 3, 4]


def test_a_zoomed_crop_is_the_larger_crop_shrunk_with_each_click_in_its_block():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (3, 300, 300)).astype(np.uint8)
    rows, cols = rng.choice(300, 40, replace=False), rng.choice(300, 40, replace=False)
    clicks = Clicks(rows, cols, rng.integers(0, 5, 40))
    crop, point_labels = PointDataset([image], [clicks], crop_size=64)[0, 30, 50, 0, 2]
    assert crop.shape == (3, 64, 64) and point_labels.shape == (64, 64)
    expected = image[:, 30:158, 50:178].astype(np.float32).reshape(3, 64, 2, 64, 2).mean((2, 4))
    assert np.allclose(crop.numpy(), expected)
    inside = (rows >= 30) & (rows < 158) & (cols >= 50) & (cols < 178)  # distinct rows: one a block
    assert inside.sum() > 3 and (point_labels >= 0).sum() == inside.sum()
    for r, c, k in zip(rows[inside], cols[inside], clicks.classes[inside]):
        assert point_labels[(r - 30) // 2, (c - 50) // 2] == k
    assert np.array_equal(shrink(image[:, 30:158, 50:178], 2), expected)


def test_shrunk_labels_keep_a_label_of_each_block_and_nothing_else():
    labels = np.full((4, 6), -1)
    labels[0, 1], labels[3, 3], labels[2, 4], labels[3, 5] = 2, 1, 4, 3
    assert shrink_labels(labels, 2).tolist() == [[2, -1, -1], [-1, 1, 3]]


def test_the_crop_sampler_zooms_half_the_crops_of_tiles_that_hold_a_zoomed_crop():
    rng = np.random.default_rng(1)
    shapes = [(400, 300), (100, 100)]
    clicks = [
        Clicks(rng.integers(0, h, 30), rng.integers(0, w, 30), rng.integers(0, 5, 30))
        for h, w in shapes
    ]
    dataset = PointDataset([np.zeros((3, *s), np.uint8) for s in shapes], clicks, crop_size=64)
    torch.manual_seed(0)
    places = list(
        CropSampler(clicks, shapes, 64, 800, torch.Generator().manual_seed(0), zoom_out=3)
    )
    zoomed = [p for p in places if len(p) == 5]
    assert all(p[0] == 0 and p[4] == 3 for p in zoomed)  # the 100 px tile never holds 192 px
    assert 0.4 < len(zoomed) / sum(p[0] == 0 for p in places) < 0.6
    for place in zoomed[:50]:
        tile, top, left = place[:3]
        assert top + 192 <= 400 and left + 192 <= 300 and (dataset[place][1] >= 0).any()
    torch.manual_seed(0)  # without a zoom the sampler draws as it always did
    unzoomed = list(CropSampler(clicks, shapes, 64, 800, torch.Generator().manual_seed(0)))
    torch.manual_seed(0)
    assert unzoomed == list(
        CropSampler(clicks, shapes, 64, 800, torch.Generator().manual_seed(0), zoom_out=1)
    )
    with pytest.raises(
        ValueError,
        match="--train-zoom-out 5 needs training tiles of at least 320x320 px .* 400x300",
    ):
        CropSampler(clicks, shapes, 64, zoom_out=5)


def test_dihedral_gives_the_8_symmetries_and_undoes_them_in_numpy_and_torch():
    square = np.arange(2 * 4 * 4).reshape(2, 4, 4)
    views = [dihedral(square, turn) for turn in range(8)]
    assert len({v.tobytes() for v in views}) == 8  # 8 different views
    assert np.array_equal(views[1], square[..., ::-1])  # turn 1: the report's flip
    for turn, view in enumerate(views):
        assert np.array_equal(undo_dihedral(view, turn), square)
        assert torch.equal(dihedral(torch.from_numpy(square), turn), torch.from_numpy(view.copy()))
        assert torch.equal(
            undo_dihedral(torch.from_numpy(view.copy()), turn), torch.from_numpy(square)
        )


def test_crop_sampler_turns_follow_the_augmentation():
    mask = np.zeros((256, 256), np.uint8)
    points = [sample_points(mask, np.random.default_rng(0), points_per_image=20)]
    torch.manual_seed(0)
    turns = lambda augment: {
        place[3] for place in CropSampler(points, [mask.shape], 64, 400, augment=augment)
    }
    assert turns("hflip") == {0, 1} and turns("dihedral") == set(range(8))
    with pytest.raises(ValueError, match="unknown augment 'rotate': use hflip or dihedral"):
        CropSampler(points, [mask.shape], 64, augment="rotate")


def test_pasted_boxes_carry_their_clicks_and_only_their_own_pixels_labels():
    # every pixel's value says which crop and place it came from; a label is a function of it
    n, size = 4, 64
    images = torch.arange(n * size * size, dtype=torch.float32).reshape(n, 1, size, size)
    truth = (images[:, 0].long() * 7) % 5  # each pixel's "class"
    clicks = torch.full((n, size, size), -1)
    for i in range(n):  # one click per crop, of a class no other crop's click has
        r, c = 5 + 13 * i, 50 - 11 * i
        clicks[i, r, c] = truth[i, r, c] = i
    torch.manual_seed(0)
    pasted, pasted_clicks, pasted_truth = paste_boxes(2, images, clicks, truth)
    # the labels moved with their pixels: where a pixel came from, there its labels came from
    source = pasted[:, 0].long()
    assert torch.equal(pasted_truth, truth.flatten()[source])
    assert torch.equal(pasted_clicks, clicks.flatten()[source])
    for i in range(n):
        moved = source[i] // (size * size) != i
        assert moved.any() and moved.float().mean() <= 2 * (size // 4) ** 2 / size**2
    # a box is cut around another crop's click: with one box, each crop now holds one
    one, one_clicks = paste_boxes(1, images, clicks)
    for i in range(n):
        moved = one[i, 0].long() // (size * size) != i
        assert (one_clicks[i][moved] >= 0).sum() == 1
    torch.manual_seed(0)  # same seed, same boxes
    assert torch.equal(paste_boxes(2, images, clicks, truth)[0], pasted)
    # a batch of one has no other crop: it is left as it is
    alone = paste_boxes(3, images[:1], clicks[:1])
    assert torch.equal(alone[0], images[:1]) and torch.equal(alone[1], clicks[:1])


def test_photometric_changes_each_crop_within_its_strength_and_moves_no_pixel():
    torch.manual_seed(0)
    n, size = 64, 32
    ramp = torch.linspace(10, 200, size)
    images = (ramp[None, None, None, :] + torch.zeros(n, 3, size, 1)).contiguous()  # left to right
    changed = photometric(images, 0.2)
    assert changed.shape == images.shape and changed.dtype == torch.float32
    assert (changed >= 0).all() and not torch.equal(changed, images)
    # brightness x contrast x gain of a band: within (1 ± 0.2)² x (1 ± 0.1) of the crop's spread
    spread = changed.std((2, 3)) / images.std((2, 3))
    assert (spread > 0.8**2 * 0.9 * 0.9).all() and (spread < 1.2**2 * 1.1).all()
    assert spread.std() > 0.02  # crops and bands differ
    # no pixel moves: a crop's columns keep their order (the ramp rises left to right)
    middle = changed[:, :, size // 2, 2:-2]
    assert (middle.diff(dim=-1) > 0).all()
    torch.manual_seed(0)  # the global generator decides: same seed, same changes
    assert torch.equal(photometric(images, 0.2), changed)
