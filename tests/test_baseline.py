"""baseline.py: the pixel random forest on the network's own clicks."""

import json

import numpy as np
import pytest

import baseline
import train as train_module
from conftest import write_tile
from lib import forest

TINY = dict(train_size=6, val_size=2, test_size=2, image_size=64)


class Stop(Exception):
    pass


def test_the_forest_and_the_network_get_the_same_clicks(monkeypatch, tmp_path):
    seen = {}

    def network_clicks(point_labels, *args, **kwargs):
        seen["train.py"] = point_labels
        raise Stop

    def forest_clicks(images, point_labels):
        seen["baseline.py"] = point_labels
        raise Stop

    monkeypatch.setattr(train_module, "CropSampler", network_clicks)
    monkeypatch.setattr(baseline, "training_pixels", forest_clicks)
    for run, config in ((train_module.train, dict(TINY, weights="none")), (baseline.run, TINY)):
        with pytest.raises(Stop):
            run(
                dict(
                    config,
                    points_per_class=3,
                    strategy="stratified",
                    seed=4,
                    out=str(tmp_path / "r"),
                )
            )
    ours, theirs = seen["baseline.py"], seen["train.py"]
    assert len(ours) == 6 and all(c.rows.size for c in ours)
    for a, b in zip(ours, theirs):
        assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_features_of_a_constant_image_are_constant():
    f = forest.features(np.full((3, 40, 50), 77, np.uint8))
    assert f.shape == (48, 40, 50) and f.dtype == np.float32
    assert np.allclose(f, f[:, :1, :1], atol=1e-4)  # every plane is one value


def test_block_by_block_features_equal_the_whole_tiles():
    image = np.random.default_rng(0).integers(0, 255, (2, 150, 110)).astype(np.uint8)
    whole, pieces = forest.features(image), np.zeros((32, 150, 110), np.float32)
    for top, left, f in forest.blocks(image, block=64):
        pieces[:, top : top + f.shape[1], left : left + f.shape[2]] = f
    assert np.allclose(pieces, whole, atol=1e-3)


def test_the_forest_learns_a_two_colour_toy_exactly(tmp_path):
    root = tmp_path / "toy"
    root.mkdir()
    (root / "classes.txt").write_text("field\nroof\n")
    mask = np.zeros((32, 128), np.uint8)
    mask[:, 50:90] = 1  # a band of roof across a field
    image = np.stack(
        [np.where(mask == 1, 200, 40), np.where(mask == 1, 60, 150), np.full(mask.shape, 90)]
    ).astype(np.uint8)
    # the image is the same down every column, so clicks along one row show every feature vector
    # there is
    write_tile(root / "train", "a", image, clicks=[(x, 5, int(mask[5, x])) for x in range(128)])
    for split in ("val", "test"):
        write_tile(root / split, "a", image, mask=mask)
    metrics = baseline.run(dict(data=str(root), out=str(tmp_path / "run")))
    assert (
        metrics["test"]["miou"] == 1.0 and metrics["val_miou"] == 1.0 and metrics["features"] == 48
    )
    assert (
        json.loads((tmp_path / "run" / "metrics.json").read_text())["method"]
        == "pixel random forest"
    )
    assert (tmp_path / "run" / "predictions" / "a_classes.png").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dense"], "--dense: the pixel classifier is the clicks baseline"),
        (["--points", "-3"], "--points must be a positive integer, got -3"),
        (["--points-per-class", "5", "--trees", "9"], "unrecognized arguments: --trees 9"),
        (["--points", "5", "--data", "/no/such/folder"], "classes.txt: missing"),
        ([], "choose exactly one of --points N, --points-per-class K, --dense"),
    ],
)
def test_bad_flags_exit_2_with_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        baseline.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
