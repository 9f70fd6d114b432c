"""tiles.py, predict.py and `train.py --data`: your own tiles in, trained model and PNGs out."""

import numpy as np
import pytest
import torch
from PIL import Image

import predict
from conftest import FAST, own_folder
from lib import annotations, tiles
from train import train


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
    root = own_folder(tmp_path / "nir", bands=4, with_val=False)
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


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_legends_and_click_files_with_a_bom_read_as_without(tmp_path, encoding):
    # a spreadsheet's "CSV UTF-8" starts with a BOM; Windows tools write UTF-16 with one
    (tmp_path / "classes.txt").write_text("dark\nbright\n", encoding=encoding)
    assert annotations.read_legend(tmp_path).names == ("dark", "bright")
    (tmp_path / "a.csv").write_text("x,y,class\n3,4,bright\n", encoding=encoding)
    clicks = annotations.read_clicks(tmp_path / "a.csv", (10, 10), ("dark", "bright"))
    assert (clicks.rows.tolist(), clicks.cols.tolist(), clicks.classes.tolist()) == ([4], [3], [1])


def test_a_text_file_in_another_encoding_names_the_file_and_line(tmp_path):
    (tmp_path / "classes.txt").write_bytes("dark\nbr\u00fbl\u00e9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"classes.txt:2: not utf-8 text \(byte 0xfb\)"):
        annotations.read_legend(tmp_path)
