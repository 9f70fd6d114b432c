"""export.py: the synthetic scenes written as a tile folder read back, and train, as the
generator made them."""

import subprocess
import sys

import numpy as np
import pytest

import export
from clicks import sample_split_points
from conftest import FAST
from data import make_split
from lib import tiles
from train import train


def test_export_reads_back_as_the_generator_made_it(exported):
    data = tiles.load_folder(exported, 0, dict(points_per_image=30))
    images, masks = make_split("train", 4, seed=0, image_size=64)
    assert (
        data["classes"] == ("Urban", "Vegetation", "Water", "Bare Soil", "Road")
        and data["bands"] == 3
    )
    assert np.array_equal(np.stack(data["train"][0]), images)  # 8-bit PNGs: lossless, kept as uint8
    assert data["train"][0][0].dtype == np.uint8
    # same seed, same clicks as the built-in route
    for ours, builtin in zip(data["train"][1], sample_split_points(masks, 0, points_per_image=30)):
        assert np.array_equal(ours.point_labels((64, 64)), builtin.point_labels((64, 64)))
    assert len(data["val"][0]) == 2 and len(data["test"][0]) == 2
    assert np.allclose(data["mean"], np.stack(data["train"][0]).mean(axis=(0, 2, 3)), rtol=1e-4)


def test_export_refuses_a_non_empty_folder(exported):
    with pytest.raises(ValueError, match="exists and is not empty"):
        export.export_tiles(exported)


@pytest.mark.slow
def test_export_py_tiles_command(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "export.py",
            "tiles",
            str(tmp_path / "x"),
            "--train-size",
            "2",
            "--val-size",
            "1",
            "--test-size",
            "1",
            "--image-size",
            "32",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "x" / "train" / "images").glob("*.png"))) == 2


@pytest.mark.slow
def test_exported_folder_trains_to_the_built_in_numbers(exported, tmp_path):
    from_folder = train(dict(FAST, data=str(exported), points=100, out=str(tmp_path / "folder")))
    built_in = train(
        dict(FAST, train_size=4, val_size=2, test_size=2, points=100, out=str(tmp_path / "builtin"))
    )
    assert from_folder["classes"][4] == "Road" and (tmp_path / "folder" / "model.pt").exists()
    assert from_folder["labeled_fraction"] == built_in["labeled_fraction"]
    assert from_folder["test"] == built_in["test"]
    assert [h["train_loss"] for h in from_folder["history"]] == [
        h["train_loss"] for h in built_in["history"]
    ]
