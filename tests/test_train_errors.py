"""train.py's errors: each bad value or flag gives one line naming it, exit code 2, no traceback."""

import subprocess
import sys

import pytest
import torch

from train import main


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--points", "-5"], "--points must be a positive integer, got -5"),
        (["--points-per-class", "0"], "--points-per-class must be a positive integer, got 0"),
        (
            ["--points", "10", "--image-size", "100"],
            "--image-size must be a multiple of 32, got 100",
        ),
        (["--points-per-class", "5", "--strategy", "grid"], "invalid choice: 'grid'"),
        (["--points", "10", "--weights", "/no/such.pth"], "weights file not found: /no/such.pth"),
        (["--points", "10", "--points-per-class", "3"], "choose exactly one"),
        ([], "choose exactly one"),
        (["--points", "10", "--strategy", "stratified"], "applies to --points-per-class only"),
        (["--points", "ten"], "invalid int value: 'ten'"),
        (["--points", "10", "--seed", "-1"], "--seed must be a non-negative integer, got -1"),
        (["--pionts", "10"], "unrecognized arguments: --pionts"),
        (["--points", "10", "--precision", "fp16"], "argument --precision: invalid choice: 'fp16'"),
        (["--points", "10", "--augment", "rotate"], "argument --augment: invalid choice: 'rotate'"),
        (
            "--points 5000 --image-size 64 --train-size 1 --val-size 0 --test-size 1".split(),
            "5000 points per image asked, but the image has only 4096",
        ),
    ],
)
def test_bad_flags_exit_2_with_one_line(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(
            argv + ["--out", str(tmp_path), "--weights", "none"]
            if "--weights" not in argv
            else argv
        )
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert len(err.strip().splitlines()) == 1 and message in err, err


def test_a_broken_weights_file_or_an_output_that_is_a_file_gives_one_line(tmp_path, capsys):
    (tmp_path / "broken.pth").write_bytes(b"not a state dict")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    (tmp_path / "a_file").write_text("")
    for argv, message in (
        (
            ["--weights", str(tmp_path / "broken.pth"), "--out", str(tmp_path / "r")],
            "broken.pth is not a torchvision resnet34 state dict (UnpicklingError",
        ),
        (
            ["--weights", str(tmp_path / "list.pth"), "--out", str(tmp_path / "r")],
            "list.pth is not a torchvision resnet34 state dict (AttributeError",
        ),
        (
            ["--weights", "none", "--out", str(tmp_path / "a_file")],
            "a_file: exists and is not a folder",
        ),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(
                "--points 10 --train-size 1 --val-size 0 --test-size 1 --image-size 32".split()
                + argv
            )
        err = capsys.readouterr().err
        assert (
            exit_info.value.code == 2 and len(err.strip().splitlines()) == 1 and message in err
        ), err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_command_line_error_has_no_traceback():
    result = subprocess.run(
        [sys.executable, "train.py", "--points", "10", "--image-size", "100"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip() == "train.py: error: --image-size must be a multiple of 32, got 100"
    )


def finished_checkpoint(folder, classes=5, bands=3, standardise_by="set"):
    """A folder as a finished run leaves it: model.pt (a random network), then metrics.json."""
    from lib.checkpoint import save_checkpoint
    from unet import UNet

    folder.mkdir()
    statistics = dict(mean=[0.0] * bands, std=[1.0] * bands)
    model = UNet(
        classes, weights=None, in_channels=bands, **statistics, standardise_by=standardise_by
    )
    names = ["Urban", "Vegetation", "Water", "Bare Soil", "Road", "Cloud"][:classes]
    save_checkpoint(folder / "model.pt", model, names, None, bands, 64)
    (folder / "metrics.json").write_text("{}")
    return folder


def test_a_bad_init_is_one_line_and_writes_nothing(tmp_path, capsys):
    """--init: a missing run, a corrupt model.pt, a run still training, other classes, bands or
    --standardise."""
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "model.pt").write_bytes(b"not a checkpoint")
    training = finished_checkpoint(tmp_path / "training")
    (training / "metrics.json").unlink()  # as a run still training leaves its folder
    (training / "resume.pt").write_bytes(b"state")
    finished_checkpoint(tmp_path / "six", classes=6)
    finished_checkpoint(tmp_path / "four", bands=4)
    finished_checkpoint(tmp_path / "window", standardise_by="window")
    cases = [
        ("nowhere", "nowhere: no model.pt there; give a finished train.py run"),
        ("corrupt", "corrupt/model.pt: not a train.py checkpoint"),
        ("training", "that run is still training, or was interrupted"),
        ("six", "its classes are ['Urban', 'Vegetation', 'Water', 'Bare Soil', 'Road', 'Cloud']"),
        ("four", "trained on 4 bands, this run's tiles have 3"),
        ("window", "its --standardise is window, this run's set"),
    ]
    tiny = "--points 10 --train-size 2 --val-size 1 --test-size 1 --image-size 64 --epochs 1"
    for folder, message in cases:
        out = tmp_path / f"out-{folder}"
        argv = [*tiny.split(), "--weights", "none", "--init", str(tmp_path / folder)]
        with pytest.raises(SystemExit) as exit_info:
            main([*argv, "--out", str(out)])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and message in err, err
        assert len(err.strip().splitlines()) == 1 and not out.exists()
