"""tiles.py, predict.py and `train.py --data`: your own tiles in, trained model and PNGs out."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import export
import predict
from clicks import sample_split_points
from conftest import FAST, own_folder
from data import make_split
from lib import tiles
from train import train
from unet import UNet


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


def test_clicks_train_predict_round_trip_at_exact_sizes(tmp_path, capsys):
    root = own_folder(tmp_path / "own")
    data = tiles.load_data(dict(points_per_image=5), 0, str(root))
    clicks = data["train"][1][0].point_labels((50, 90))
    assert (
        (clicks >= 0).sum() == 4
        and clicks[4, 3] == 0
        and clicks[40, 80] == 1
        and clicks[2, 70] == 1
    )
    # the CSVs are all the labels
    metrics = train(dict(FAST, data=str(root), out=str(tmp_path / "run")))
    assert metrics["classes"] == ["dark", "bright"] and metrics["labeled_fraction"] == 8 / (
        2 * 50 * 90
    )
    extra = tmp_path / "new"
    extra.mkdir()
    np.save(
        extra / "odd.npy", np.random.default_rng(1).normal(100, 30, (3, 37, 101)).astype(np.float32)
    )
    predict.main(
        [
            str(tmp_path / "run" / "model.pt"),
            str(root / "test" / "images"),
            str(extra / "odd.npy"),
            "--out",
            str(tmp_path / "pred"),
        ]
    )
    assert Image.open(tmp_path / "pred" / "a_classes.png").size == (90, 50)
    assert Image.open(tmp_path / "pred" / "odd_classes.png").size == (101, 37)
    assert Image.open(tmp_path / "pred" / "odd_preview.png").mode == "RGB"
    assert "[2/2]" in capsys.readouterr().out


def test_four_band_npy_tiles_train_and_without_val_the_last_epoch_is_kept(tmp_path):
    root = own_folder(tmp_path / "nir", bands=4, hwc=True, with_val=False)
    metrics = train(dict(FAST, data=str(root), points=5, epochs=2, out=str(tmp_path / "run")))
    checkpoint = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert checkpoint["bands"] == 4 and checkpoint["state_dict"]["mean"].shape == (1, 4, 1, 1)
    assert [h["val_miou"] for h in metrics["history"]] == [None, None] and metrics[
        "best_epoch"
    ] == 2
    with pytest.raises(SystemExit):  # a 4-band model cannot read a 3-band tile
        np.save(tmp_path / "rgb.npy", np.zeros((3, 32, 32), np.float32))
        predict.main(
            [
                str(tmp_path / "run" / "model.pt"),
                str(tmp_path / "rgb.npy"),
                "--out",
                str(tmp_path / "p"),
            ]
        )
    assert not (tmp_path / "p").exists()


def break_folder(root, how):
    mask = np.zeros((50, 90), np.uint8)
    if how == "missing split":
        import shutil

        shutil.rmtree(root / "test")
    elif how == "empty split":
        for p in (root / "test" / "images").iterdir():
            p.unlink()
    elif how == "no mask":
        (root / "val" / "masks" / "a.png").unlink()
    elif how == "size mismatch":
        Image.fromarray(np.zeros((50, 80), np.uint8)).save(root / "val" / "masks" / "a.png")
    elif how == "bad mask value":
        mask[0, 0] = 7
        Image.fromarray(mask).save(root / "val" / "masks" / "a.png")
    elif how == "click outside":
        (root / "train" / "points" / "t0.csv").write_text("x,y,class\n90,10,dark\n")
    elif how == "unknown class":
        (root / "train" / "points" / "t0.csv").write_text("x,y,class\n5,10,water\n")
    elif how == "unreadable":
        (root / "train" / "images" / "t1.npy").write_text("not an image")
    elif how == "no classes":
        (root / "classes.txt").unlink()


def test_tiles_without_clicks_need_a_sampling_flag(exported, capsys):
    import train as train_module

    with pytest.raises(SystemExit):
        train_module.main(["--data", str(exported), "--weights", "none"])
    assert "scene_0000.png: no points/scene_0000.csv; give --points N" in capsys.readouterr().err


@pytest.mark.parametrize(
    "how, message",
    [
        ("missing split", r"test/images: missing or holds no images"),
        ("empty split", r"test/images: missing or holds no images"),
        ("no mask", r"val/images/a.npy: no mask; a val image needs a mask"),
        ("size mismatch", r"val/masks/a.png: mask is \(50, 80\), its image is \(50, 90\)"),
        ("bad mask value", r"val/masks/a.png: mask values \[7\] are not class indices 0..1 or 255"),
        ("click outside", r"t0.csv:2: click \(90, 10\) is outside the 90x50 image"),
        ("unknown class", r"t0.csv:2: unknown class 'water'"),
        ("unreadable", r"t1.npy: cannot read image"),
        ("no classes", r"classes.txt: missing"),
    ],
)
def test_bad_folders_get_one_clear_error_and_write_nothing(tmp_path, how, message, capsys):
    import train as train_module

    root = own_folder(tmp_path / "own")
    break_folder(root, how)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        train_module.main(
            ["--data", str(root), "--points", "5", "--weights", "none", "--out", str(out)]
        )
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1
    assert __import__("re").search(message, err), err
    assert not out.exists()


def test_predict_rejects_bad_checkpoints(tmp_path, capsys):
    torch.save({"something": 1}, tmp_path / "junk.pt")
    model = UNet(3, weights=None)
    torch.save(
        dict(state_dict=model.state_dict(), classes=["a", "b"], bands=3, image_size=64),
        tmp_path / "wrong.pt",
    )
    np.save(tmp_path / "x.npy", np.zeros((3, 32, 32), np.float32))
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint at all")
    for checkpoint, message in (
        ("junk.pt", "not a train.py checkpoint"),
        ("nope.pt", "checkpoint not found"),
        ("wrong.pt", "weights are for 3 classes and 3 bands, but it declares 2 classes"),
        ("broken.pt", "broken.pt: not a train.py checkpoint ("),
    ):
        with pytest.raises(SystemExit) as exit_info:
            predict.main(
                [str(tmp_path / checkpoint), str(tmp_path / "x.npy"), "--out", str(tmp_path / "p")]
            )
        err = capsys.readouterr().err
        assert (
            exit_info.value.code == 2 and len(err.strip().splitlines()) == 1 and message in err
        ), err
    (tmp_path / "a_file").write_text("")
    with pytest.raises(SystemExit):
        predict.main(
            [str(tmp_path / "wrong.pt"), str(tmp_path / "x.npy"), "--out", str(tmp_path / "a_file")]
        )
    assert "a_file: exists and is not a folder" in capsys.readouterr().err
