"""train.py end to end on tiny data, its metrics, its determinism and its command-line errors."""

import json
import subprocess
import sys

import pytest
import torch

from clicks import dihedral
from evaluation import confusion_matrix, predict_tile, scores
from lib import device
from recipe import DEFAULTS, TILE_RECIPE, check_config, settings
from train import main, train
from unet import UNet

TINY = dict(
    train_size=16, val_size=4, test_size=4, image_size=64, epochs=2, batch_size=4, weights="none"
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return train(dict(TINY, points=100, out=str(out))), out


def test_end_to_end_writes_metrics_and_checkpoint(tiny_run):
    metrics, out = tiny_run
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(metrics))
    for key in ("config", "labeled_fraction", "encoder_init", "history", "test", "wall_time_s"):
        assert key in saved
    assert saved["encoder_init"] == "random" and saved["config"]["points"] == 100
    assert saved["labeled_fraction"] == pytest.approx(100 / 64**2)
    assert [h["epoch"] for h in saved["history"]] == [1, 2]
    assert set(saved["test"]["per_class"]) == {"Urban", "Vegetation", "Water", "Bare Soil", "Road"}
    assert set(saved["test"]["per_class"]["Road"]) == {"iou", "precision", "recall"}
    checkpoint = torch.load(out / "model.pt", weights_only=True)
    assert checkpoint["classes"][0] == "Urban" and "state_dict" in checkpoint
    assert not list(out.glob("*.tmp*"))  # atomic writes leave no temp files


def test_tiny_run_beats_always_answering_the_commonest_class(tiny_run):
    metrics, _ = tiny_run
    # the floor any useful model clears: always answering the test split's commonest class
    assert metrics["test"]["pixel_accuracy"] > metrics["test"]["commonest_class_accuracy"] > 0.2
    assert metrics["history"][-1]["train_loss"] < metrics["history"][0]["train_loss"]


def test_same_seed_gives_identical_metrics(tiny_run, tmp_path):
    metrics, _ = tiny_run
    again = train(dict(TINY, points=100, out=str(tmp_path)))
    assert again["test"] == metrics["test"]
    assert [h["train_loss"] for h in again["history"]] == [
        h["train_loss"] for h in metrics["history"]
    ]


def test_confusion_matrix_and_scores_by_hand():
    target = torch.tensor([0, 0, 1, 1, 2, 255])
    prediction = torch.tensor([0, 1, 1, 1, 0, 2])  # the 255 pixel is not scored
    matrix = confusion_matrix(prediction, target, 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    s = scores(matrix, ["a", "b", "c"])
    assert s["per_class"]["a"] == dict(iou=1 / 3, precision=1 / 2, recall=1 / 2)
    assert s["per_class"]["b"]["iou"] == pytest.approx(2 / 3)
    assert s["per_class"]["c"] == dict(iou=0.0, precision=None, recall=0.0)
    assert s["miou"] == pytest.approx((1 / 3 + 2 / 3 + 0) / 3) and s[
        "pixel_accuracy"
    ] == pytest.approx(3 / 5)


def test_metrics_come_from_one_matrix_over_the_split_not_a_mean_of_images():
    # image 1: 1 pixel, all wrong; image 2: 99 pixels, all right -> split accuracy 0.99, not 0.5
    m = confusion_matrix(torch.tensor([1]), torch.tensor([0]), 2) + confusion_matrix(
        torch.zeros(99, dtype=torch.long), torch.zeros(99, dtype=torch.long), 2
    )
    assert scores(m, ["a", "b"])["pixel_accuracy"] == pytest.approx(0.99)


def test_predict_tile_covers_any_tile_size_exactly():
    model = UNet(weights=None).eval()
    for h, w in [(64, 64), (50, 130), (97, 33)]:
        logits = predict_tile(model, torch.rand(3, h, w), window=64)
        assert logits.shape == (5, h, w) and torch.isfinite(logits).all()


class WhereAmI(torch.nn.Module):
    """A stand-in model whose two logits are constant over each window: the window's top row and
    left column, read off an image whose bands are the row and column numbers. It notes every
    window it sees."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(2, 1, 1))
        self.seen = []

    def forward(self, windows):
        corners = windows[:, :, 0, 0]  # (n, 2): top, left
        self.seen += [tuple(int(v) for v in c) for c in corners]
        return corners[:, :, None, None].expand(-1, -1, *windows.shape[-2:]).contiguous()


@pytest.mark.parametrize("h, w", [(64, 64), (97, 130), (50, 33)])
def test_predict_tile_averages_the_overlapping_windows(h, w):
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    model, window = WhereAmI(), 32
    logits = predict_tile(model, torch.stack([rows, cols]).float().numpy(), window, batch_size=3)
    expected, covers = torch.zeros(2, h, w), torch.zeros(h, w)
    for top, left in model.seen:  # by brute force: each pixel, the windows holding it
        expected[:, top : top + window, left : left + window] += torch.tensor(
            [top, left], dtype=torch.float32
        )[:, None, None]
        covers[top : top + window, left : left + window] += 1
    assert (covers >= 1).all() and covers.max() > 1  # every pixel covered, windows overlap
    assert torch.allclose(logits, expected / covers)


def test_the_best_epochs_weights_are_tested_when_it_is_not_the_last(monkeypatch, tmp_path):
    import train as train_module

    snapshots, tested = [], []

    def fake_evaluate(model, split, classes, window, batch_size, precision, tta=False):
        weights = {k: v.clone() for k, v in model.state_dict().items()}
        if len(snapshots) < 3:  # validation after epochs 1, 2, 3: epoch 2 is best
            snapshots.append(weights)
            return dict(miou=[0.5, 0.9, 0.7][len(snapshots) - 1])
        tested.append(weights)
        return train_module.evaluate.__wrapped__(
            model, split, classes, window, batch_size, precision, tta
        )

    fake_evaluate.__wrapped__ = train_module.evaluate
    monkeypatch.setattr(train_module, "evaluate", fake_evaluate)
    metrics = train(dict(TINY, points=100, epochs=3, out=str(tmp_path)))
    assert metrics["best_epoch"] == 2 and [h["val_miou"] for h in metrics["history"]] == [
        0.5,
        0.9,
        0.7,
    ]
    assert all(torch.equal(tested[0][k], snapshots[1][k]) for k in snapshots[1])
    assert not all(torch.equal(tested[0][k], snapshots[2][k]) for k in snapshots[2])
    saved = torch.load(tmp_path / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(saved[k], snapshots[1][k]) for k in saved)


@pytest.mark.parametrize(
    "config, message",
    [
        (dict(points=10, learning_rate=0.1), "unknown config keys ['learning_rate']"),
        (dict(points=10, lr=0.0), "--lr must be > 0 and --weight-decay >= 0, got 0.0 and 0.0001"),
        (
            dict(points=10, weight_decay=-1.0),
            "--lr must be > 0 and --weight-decay >= 0, got 0.001 and -1.0",
        ),
        (dict(points=10, loss="crf"), "unknown loss 'crf': use pce or pce+crf"),
        (
            dict(points=10, loss="pce+crf", crf_weight=-1.0),
            "--crf-weight must be >= 0 and the CRF sigmas > 0, got -1.0",
        ),
        (
            dict(points=10, loss="pce+crf", crf_sigma_xy=0.0),
            "the CRF sigmas > 0, got 2.0, 0.0 and 2.0",
        ),
        (dict(points=10, crf_sigma_band=-2.0), "the CRF sigmas > 0, got 2.0, 6.0 and -2.0"),
    ],
)
def test_config_checks_name_the_bad_value(config, message):
    with pytest.raises(ValueError) as error:
        check_config({**DEFAULTS, **config})
    assert message in str(error.value)


def test_dense_training_uses_every_pixel(tmp_path):
    metrics = train(dict(TINY, dense=True, epochs=1, out=str(tmp_path)))
    assert metrics["labeled_fraction"] == 1.0


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
            [
                "--points",
                "5000",
                "--image-size",
                "64",
                "--train-size",
                "1",
                "--val-size",
                "0",
                "--test-size",
                "1",
            ],
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
                [
                    "--points",
                    "10",
                    "--train-size",
                    "1",
                    "--val-size",
                    "0",
                    "--test-size",
                    "1",
                    "--image-size",
                    "32",
                ]
                + argv
            )
        err = capsys.readouterr().err
        assert (
            exit_info.value.code == 2 and len(err.strip().splitlines()) == 1 and message in err
        ), err
    assert not (tmp_path / "r").exists()


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


def test_bf16_runs_are_recorded_as_such_and_just_as_deterministic(tmp_path):
    runs = [
        train(dict(TINY, points=100, epochs=1, precision="bf16", out=str(tmp_path / str(i))))
        for i in range(2)
    ]
    assert (
        runs[0]["precision"] == "bf16"
        and runs[0]["torch"] == torch.__version__
        and runs[0]["machine"]
    )
    assert (
        runs[0]["test"] == runs[1]["test"]
        and runs[0]["history"][0]["train_loss"] == runs[1]["history"][0]["train_loss"]
    )


@pytest.mark.parametrize(
    "flags, asked, expected",
    [
        ("fpu sse avx512_bf16 avx512f", "auto", ("bf16", "CPU has AVX512-BF16")),
        ("fpu amx_bf16 amx_tile", "auto", ("bf16", "CPU has AMX")),
        (
            "fpu sse avx2",
            "auto",
            ("fp32", "CPU has neither AMX nor AVX512-BF16, so bf16 would be slower"),
        ),
        (
            "fpu sse avx2",
            "bf16",
            (
                "bf16",
                "asked for; CPU has neither AMX nor AVX512-BF16: bf16 is emulated, slower than "
                "fp32",
            ),
        ),
        ("fpu avx512_bf16", "fp32", ("fp32", "asked for; CPU has AVX512-BF16")),
    ],
)
def test_auto_precision_follows_the_cpu_and_says_why(monkeypatch, flags, asked, expected):
    monkeypatch.setattr(device, "cpu_info", lambda field: flags if field == "flags" else "")
    assert device.pick_precision(asked, torch.device("cpu")) == expected


def test_bf16_evaluation_agrees_with_fp32():
    model = UNet(weights=None).eval().to(memory_format=torch.channels_last)
    image = torch.randint(0, 255, (3, 96, 160), dtype=torch.uint8).numpy()
    fp32, bf16 = (predict_tile(model, image, 64, precision=p) for p in ("fp32", "bf16"))
    assert bf16.dtype == torch.float32 and (fp32.argmax(0) == bf16.argmax(0)).float().mean() > 0.9


def test_test_time_augmentation_answers_the_same_whichever_way_the_tile_faces():
    torch.manual_seed(0)
    model, tile = UNet(weights=None).eval(), torch.rand(3, 64, 64).numpy()
    with_tta = predict_tile(model, tile, 64, tta=True)
    without = predict_tile(model, tile, 64)
    for turn in range(1, 8):
        turned = dihedral(tile, turn).copy()
        assert torch.allclose(
            predict_tile(model, turned, 64, tta=True), dihedral(with_tta, turn), atol=1e-5
        )
        assert not torch.allclose(
            predict_tile(model, turned, 64), dihedral(without, turn), atol=1e-3
        )  # a plain net does not


def test_tile_folders_get_the_tile_recipe_unless_a_flag_says_otherwise():
    # the command line's "not given"
    report = settings(dict(points=10, epochs=None, augment=None, tta=None))
    assert (report["epochs"], report["augment"], report["tta"]) == (5, "hflip", False)
    tiles = settings(dict(data="tiles", points=10, epochs=None, augment=None, tta=None))
    assert (
        {k: tiles[k] for k in TILE_RECIPE}
        == TILE_RECIPE
        == dict(augment="dihedral", epochs=10, tta=True)
    )
    chosen = settings(dict(data="tiles", points=10, epochs=3, augment=None, tta=False))
    assert (chosen["epochs"], chosen["augment"], chosen["tta"]) == (3, "dihedral", False)


def test_a_tta_run_records_its_scores_with_and_without(tmp_path):
    metrics = train(
        dict(TINY, points=100, epochs=1, augment="dihedral", tta=True, out=str(tmp_path))
    )
    assert metrics["config"]["augment"] == "dihedral" and metrics["config"]["tta"] is True
    assert (
        set(metrics["test_without_tta"]) == set(metrics["test"])
        and 0 <= metrics["val_miou_tta"] <= 1
    )
    assert set(metrics["scoring_seconds"]) == {"test", "test_without_tta", "val_tta"}
