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


class LeaningForest:
    """A stand-in forest of two classes: sure of class 0 where band 0 is dark, leaning to class 1
    (0.45 / 0.55) where it is bright, sure of class 1 (0.01 / 0.99) where it is very bright."""

    classes_ = np.array([0, 1])

    def predict_proba(self, pixels):
        bright, very_bright = pixels[:, 0] > 100, pixels[:, 0] > 220
        leaning = np.where(bright[:, None], [0.45, 0.55], [0.95, 0.05])
        return np.where(very_bright[:, None], [0.01, 0.99], leaning)

    def predict(self, pixels):
        return self.predict_proba(pixels).argmax(1)


def test_val_chooses_the_tile_prior_for_the_forest_as_for_the_network(capsys):
    image = np.full((3, 16, 16), 40, np.uint8)
    image[0, :4, :4] = 200  # 16 bright pixels on a dark tile: the forest leans to class 1 there
    image[0, 8:, 8:] = 250  # and is sure of class 1 on 64 very bright ones
    roof_corner, roof_too = np.zeros((16, 16), np.uint8), np.zeros((16, 16), np.uint8)
    roof_corner[8:, 8:] = roof_too[8:, 8:] = 1
    roof_too[:4, :4] = 1
    classes = ["field", "roof"]
    plain, weighted = baseline.tile_maps(LeaningForest(), image, 2, [0.0, 2.0])
    assert plain[:4, :4].all() and plain[8:, 8:].all()
    assert not weighted[:4, :4].any() and weighted[8:, 8:].all()  # the unsure pulled to 0 alone
    for truth, chosen in ((roof_corner, 2.0), (roof_too, 0.0)):
        data = dict(val=([image], [truth]), classes=classes)
        val, strength, choice = baseline.val_scores(LeaningForest(), data, 2.0)
        assert strength == choice["tile_prior_chosen"] == chosen
        views = choice["val_by_view"]
        assert [v["tile_prior"] for v in views] == [2.0, 0.0]
        assert val["miou_in_truth"] == max(v["miou_in_truth"] for v in views)
    assert "val chose: as they are" in capsys.readouterr().out
    # a prior that takes roofs off val's map is left, though val (which has no roofs) scores it
    # higher: whether the roofs were false, val cannot tell (lib/evaluation.vanished)
    image[0, 8:, 8:] = 40
    data = dict(val=([image], [np.zeros((16, 16), np.uint8)]), classes=classes)
    val, strength, choice = baseline.val_scores(LeaningForest(), data, 2.0)
    assert strength == 0.0 and choice["val_by_view"][0]["takes_off"] == ["roof"]
    assert choice["val_by_view"][0]["miou_in_truth"] > val["miou_in_truth"]
    # 0 alone: the forest's own map, one val pass, no choice
    data = dict(val=([image], [roof_too]), classes=classes)
    val, strength, choice = baseline.val_scores(LeaningForest(), data, 0.0)
    assert (strength, choice) == (0.0, {})


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dense"], "--dense: the pixel classifier is the clicks baseline"),
        (["--points", "-3"], "--points must be a positive integer, got -3"),
        (["--points-per-class", "5", "--trees", "9"], "unrecognized arguments: --trees 9"),
        (["--points", "5", "--data", "/no/such/folder"], "classes.txt: missing"),
        ([], "choose exactly one of --points N, --points-per-class K, --dense"),
        (["--points", "5", "--tile-prior", "-1"], "--tile-prior must be >= 0, got -1.0"),
    ],
)
def test_bad_flags_exit_2_with_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        baseline.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
