"""lib/forest.py's fusion: the geometric mean of the network's and the forest's probabilities,
at its two ends the network alone and the forest alone; the forest's shares per class, a class it
never saw at 0; a run's forest fitted again from forest.npz gives the same maps."""

import numpy as np
import pytest
import torch

from clicks import Clicks
from lib.forest import FLOOR, Fusion, fit, fuse, probabilities, training_pixels


def tile_and_clicks(seed=0):
    """A 3-band 40 x 40 tile: left half dark (class 0), right half bright (class 2), clicked."""
    rng = np.random.default_rng(seed)
    image = rng.normal(50, 5, (3, 40, 40)).astype(np.float32)
    image[:, :, 20:] += 100
    rows = np.array([5, 10, 30, 5, 10, 30])
    cols = np.array([3, 8, 12, 25, 30, 35])
    clicks = Clicks(rows=rows, cols=cols, classes=np.array([0, 0, 0, 2, 2, 2]))
    return image, clicks


def test_the_fusion_is_the_network_at_0_and_the_forest_at_1():
    torch.manual_seed(0)
    logits = torch.randn(4, 8, 8)
    shares = torch.rand(4, 8, 8)
    shares /= shares.sum(0)
    assert torch.equal(fuse(logits, shares, 0).argmax(0), logits.argmax(0))
    assert torch.equal(fuse(logits, shares, 1).argmax(0), shares.argmax(0))
    half = fuse(logits, shares, 0.5)
    expected = 0.5 * logits.log_softmax(0) + 0.5 * shares.log()
    assert torch.allclose(half, expected)
    # a class the forest gives 0 is not ruled out: the network can still win it
    zero = torch.zeros(4, 1, 1)
    zero[1] = 1.0
    sure = torch.full((4, 1, 1), -20.0)
    sure[3] = 20.0
    assert fuse(sure, zero, 0.5).isfinite().all()
    assert fuse(sure, zero, 0.5).argmax(0).item() == 3
    assert np.log(FLOOR) < 0


def test_the_forests_shares_cover_every_class_and_sum_to_1():
    pytest.importorskip("sklearn")
    image, clicks = tile_and_clicks()
    forest = fit(*training_pixels([image], [clicks]), seed=0, trees=10)
    shares = probabilities(forest, image, 4)
    assert shares.shape == (4, 40, 40)
    assert torch.allclose(shares.sum(0), torch.ones(40, 40))
    assert shares[1].abs().sum() == 0 and shares[3].abs().sum() == 0  # never clicked
    assert (shares[0, :, :10] > shares[2, :, :10]).all()  # each side its clicks' class
    assert (shares[2, :, 30:] > shares[0, :, 30:]).all()


def test_a_runs_forest_is_fitted_again_the_same_from_its_file(tmp_path):
    pytest.importorskip("sklearn")
    image, clicks = tile_and_clicks()
    data = dict(train=([image], [clicks]), classes=["a", "b", "c", "d"])
    fusion = Fusion.for_run(data, dict(forest_weight=0.5, seed=3))
    assert Fusion.for_run(data, dict(forest_weight=0.0, seed=3)) is None
    (tmp_path / "model.pt").touch()
    assert Fusion.beside(tmp_path / "model.pt") is None  # no forest.npz: no fusion
    fusion.save(tmp_path)
    again = Fusion.beside(tmp_path / "model.pt")
    assert (again.weight, again.seed, again.num_classes) == (0.5, 3, 4)
    logits = torch.randn(4, 40, 40)
    assert torch.equal(again(image, logits), fusion(image, logits))
    shares = probabilities(fusion.forest, image, 4)  # a tile's shares, kept for its views
    assert torch.equal(fusion.of_tile(image)(logits), fuse(logits, shares, 0.5))
    masks = dict(train=([image], [np.zeros((40, 40), np.uint8)]), classes=data["classes"])
    with pytest.raises(ValueError, match="a training tile has none"):
        Fusion.for_run(masks, dict(forest_weight=0.5, seed=3))
