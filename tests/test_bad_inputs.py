"""Nothing lost, nothing misread: a bad input to any command is one line on stderr, exit code 2
(130 for Ctrl-C), and no file written or changed; a run folder never holds files of two runs."""

import os
import shutil
import sys

import numpy as np
import pytest
import rasterio
import torch
from PIL import Image

import baseline
import experiments
import export
import predict
import reporting.page as report
import suggest
import train as train_module
from conftest import FAST
from lib import annotations, cli, geotiff, rasters
from lib.cli import atomic, guard
from scripts import active, bench


def files_under(*folders):
    """Every file under the folders, with its size and modification time."""
    found = {}
    for folder in folders:
        for root, _, names in os.walk(folder):
            for name in names:
                stat = os.stat(os.path.join(root, name))
                found[os.path.join(root, name)] = (stat.st_size, stat.st_mtime_ns)
    return found


def refused(main, argv, named, capsys, watched, code=2):
    """main(argv) exits with `code`, says one line on stderr that holds `named`, and leaves every
    file under `watched` as it was (and makes none)."""
    before = files_under(watched)
    with pytest.raises(SystemExit) as stop:
        main(argv)
    error = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == code and len(error) == 1 and named in error[0], error
    assert files_under(watched) == before
    return error[0]


@pytest.fixture(scope="module")
def run(exported, tmp_path_factory):
    """A finished run on a copy of the exported scenes: (tile folder, run folder)."""
    base = tmp_path_factory.mktemp("bad")
    root = base / "scenes"
    shutil.copytree(exported, root)
    train_module.train(dict(FAST, data=str(root), points_per_class=2, out=str(base / "run")))
    return root, base / "run"


# 1. an output that cannot be written is found before the work, not after it


@pytest.mark.slow
def test_every_command_checks_its_output_before_any_work(run, tmp_path, capsys):
    root, done = run
    (tmp_path / "file").write_text("a file")
    below = str(tmp_path / "file" / "out")
    named = f"{tmp_path / 'file'} is a file; give a folder to write into"
    data = ["--data", str(root), "--points-per-class", "2"]
    for main, argv in (
        (train_module.main, data + ["--weights", "none", "--out", below]),
        (baseline.main, data + ["--out", below]),
        (predict.main, [str(done / "model.pt"), str(root / "test" / "images"), "--out", below]),
        (suggest.main, [str(done), str(root), "--clicks", "3", "--out", below]),
        (export.main, ["tiles", below]),
        (experiments.main, ["final", "--quick", "--out", below]),
    ):
        refused(main, argv, named, capsys, tmp_path)


def test_a_read_only_output_folder_is_refused_before_training(
    exported, tmp_path, capsys, monkeypatch
):
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    if os.access(tmp_path / "ro", os.W_OK):  # root writes anyway: the system says no for it

        def read_only(dir):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(cli.tempfile, "TemporaryFile", read_only)
    argv = ["--data", str(exported), "--points", "5", "--out", str(tmp_path / "ro" / "run")]
    named = f"cannot write in {tmp_path / 'ro'} (Permission denied)"
    refused(train_module.main, argv, named, capsys, tmp_path)


def test_a_damaged_forest_beside_a_model_is_one_line_before_any_output(run, tmp_path, capsys):
    shutil.copy(run[1] / "model.pt", tmp_path / "model.pt")
    (tmp_path / "forest.npz").write_bytes(b"not a zip")
    argv = [
        str(tmp_path / "model.pt"),
        str(run[0] / "test" / "images"),
        "--out",
        str(tmp_path / "p"),
    ]
    named = f"{tmp_path / 'forest.npz'}: not the forest.npz of a train.py run"
    refused(predict.main, argv, named, capsys, tmp_path)


# 2. the band axis comes from the file format, never from the shape


def test_the_band_axis_comes_from_the_format_not_the_shape(run, tmp_path, capsys):
    strip = np.random.default_rng(0).integers(0, 255, (3, 64, 3), np.uint8)  # 3 rows, 64 columns
    Image.fromarray(strip).save(tmp_path / "strip.png")
    Image.fromarray(strip[:1, :1]).save(tmp_path / "dot.png")
    assert rasters.read_image(tmp_path / "strip.png").shape == (3, 3, 64)
    assert rasters.read_image(tmp_path / "dot.png").shape == (3, 1, 1)
    np.save(tmp_path / "four.npy", np.zeros((4, 3, 64), np.float32))  # documented: (bands, H, W)
    assert rasters.read_image(tmp_path / "four.npy").shape == (4, 3, 64)
    predict.main([str(run[1] / "model.pt"), str(tmp_path / "strip.png"), "--out", str(tmp_path)])
    assert Image.open(tmp_path / "strip_classes.png").size == (64, 3)


# 5. a truncated GeoTIFF is refused before the first file is written


def truncated_tiff(path):
    image = np.random.default_rng(0).integers(0, 255, (3, 600, 700), np.uint8)
    geotiff.write(path, image, "EPSG:32632", rasterio.transform.from_origin(0, 0, 1, 1))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_a_truncated_geotiff_is_one_line_before_any_output(run, tmp_path, capsys):
    scene = truncated_tiff(tmp_path / "scene.tif")
    argv = [str(run[1] / "model.pt"), str(scene), "--out", str(tmp_path / "out")]
    refused(predict.main, argv, f"{scene}: truncated", capsys, tmp_path)
    with pytest.raises(ValueError, match="scene.tif: cannot read the block at row 0, column 0"):
        list(geotiff.predict_scene(scene, lambda pixels: pixels[0], 64))  # GDAL finds it late


# 7. Ctrl-C, and a run folder that never pairs two runs' files


def test_ctrl_c_is_one_line_and_exit_130(exported, tmp_path, capsys, monkeypatch):
    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "train_step", stop)
    argv = ["--data", str(exported), "--points", "5", "--weights", "none"]
    argv += ["--image-size", "64", "--out", str(tmp_path / "run")]
    said = refused(
        lambda a: guard(train_module.main, a, "hint"), argv, "interrupted", capsys, "x", 130
    )
    assert said.endswith("interrupted; hint") and not (tmp_path / "run").exists()


def test_a_rerun_interrupted_while_saving_never_pairs_two_runs(run, tmp_path, capsys, monkeypatch):
    root, done = run
    folder = tmp_path / "run"
    shutil.copytree(done, folder)  # an earlier, finished run

    def interrupted(*args):  # just after the new model.pt is renamed into place
        raise KeyboardInterrupt

    monkeypatch.setattr(annotations, "keep_clicks", interrupted)
    with pytest.raises(KeyboardInterrupt):
        config = dict(FAST, data=str(root), points_per_class=3, seed=1, out=str(folder))
        train_module.train(config)
    assert sorted(p.name for p in folder.iterdir()) == ["model.pt"]  # the new run's, alone
    assert not torch.equal(
        torch.load(folder / "model.pt", weights_only=True)["state_dict"]["head.bias"],
        torch.load(done / "model.pt", weights_only=True)["state_dict"]["head.bias"],
    )
    argv = [str(folder), str(root), "--clicks", "3"]
    refused(suggest.main, argv, "no metrics.json: not a finished train.py run", capsys, root)


# 8. masks that do not match the legend


def test_a_colour_legend_over_class_index_masks_is_refused(exported, tmp_path, capsys):
    root = tmp_path / "scenes"
    shutil.copytree(exported, root)
    legend = annotations.read_legend(exported)
    colours = ["#3C1098", "#8429F6", "#6EC1E4", "#FEDD3A", "#E2A929"]
    (root / "classes.txt").write_text("".join(f"{n} {c}\n" for n, c in zip(legend.names, colours)))
    for mask in (root / "train" / "masks").glob("*.png"):  # greyscale class indices
        Image.fromarray(np.asarray(Image.open(mask).convert("RGB"))[..., 0] % 5).save(mask)
    argv = ["--data", str(root), "--points", "5", "--weights", "none", "--out", str(tmp_path / "r")]
    refused(train_module.main, argv, "the masks do not match the legend", capsys, tmp_path)


# 9. messages that name what the user has, and say what happened


def test_an_error_inside_an_atomic_write_names_the_file_not_its_temporary_name(tmp_path):
    with pytest.raises(ValueError) as error, atomic(tmp_path / "map.png") as tmp:
        raise OSError(f"cannot write {tmp}")
    assert str(tmp_path / "map.png") in str(error.value) and ".tmp" not in str(error.value)


def test_suggest_says_when_it_proposes_fewer_clicks_than_asked(run, tmp_path, capsys):
    root = tmp_path / "scenes"
    shutil.copytree(run[0], root)
    suggest.main([str(run[1]), str(root), "--clicks", "1000000", "--out", str(tmp_path / "s")])
    assert "(fewer than the 1000000 asked" in capsys.readouterr().out


@pytest.mark.slow
def test_a_failed_training_in_the_loop_names_its_error(tmp_path):
    log = tmp_path / "train.log"
    with pytest.raises(RuntimeError) as error:
        active.logged(["train.py", "--points", "5", "--epochs", "0"], log)
    assert "--epochs must be a positive integer, got 0" in str(error.value) and str(log) in str(
        error.value
    )


# the sweep: a bad input to each command, one line and exit 2, nothing written


@pytest.mark.parametrize(
    "main, argv, named",
    [
        (train_module.main, ["--points", "5", "--epochs", "0"], "--epochs must be a positive"),
        (train_module.main, ["--points", "5", "--frobnicate"], "unrecognized arguments"),
        (
            train_module.main,
            ["--points", "5", "--forest-weight", "1.5"],
            "--forest-weight must be in [0, 1], got 1.5",
        ),
        (
            train_module.main,
            ["--dense", "--forest-weight", "0.5"],
            "--forest-weight fits the forest on the clicks: --dense has none",
        ),
        (baseline.main, ["--dense"], "--dense: the pixel classifier is the clicks baseline"),
        (predict.main, ["none.pt", "x.png", "--out", "o"], "checkpoint not found: none.pt"),
        (
            predict.main,
            ["m.pt", "x.png", "--out", "o", "--tta-zoom-out", "2"],
            "--tta-zoom-out 2 is test-time augmentation: it needs --tta",
        ),
        (
            predict.main,
            ["m.pt", "x.png", "--out", "o", "--tile-prior", "-2"],
            "--tile-prior must be >= 0, got -2.0",
        ),
        (train_module.main, ["--points", "5", "--tile-prior", "-1"], "--tile-prior must be"),
        (suggest.main, ["run", "data", "--clicks", "0"], "--clicks and --spacing must be"),
        (export.main, ["scene", "x.tif", "--size", "0"], "scene needs a new file and a size"),
        (experiments.main, ["all", "--seeds", "0"], "--seeds must be at least 1"),
        (report.main, ["nowhere"], "nowhere: not a folder"),
        (active.main, ["--data", "d", "--clicks", "0", "--out", "o"], "must be positive"),
        (bench.main, ["--steps", "x"], "invalid int value: 'x'"),
    ],
)
def test_a_bad_input_to_any_command_is_one_line(main, argv, named, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["command"])
    refused(main, argv, named, capsys, tmp_path)
