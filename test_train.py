"""train.py end to end on tiny data, its metrics, its determinism and its command-line errors."""
import json
import subprocess
import sys

import pytest
import torch

import device
from evaluation import confusion_matrix, predict_tile, scores
from train import main, train
from unet import UNet

TINY = dict(train_size=16, val_size=4, test_size=4, image_size=64, epochs=2, batch_size=4, weights="none")


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
    assert saved["labeled_fraction"] == pytest.approx(100 / 64 ** 2)
    assert [h["epoch"] for h in saved["history"]] == [1, 2]
    assert set(saved["test"]["per_class"]) == {"Urban", "Vegetation", "Water", "Bare Soil", "Road"}
    assert set(saved["test"]["per_class"]["Road"]) == {"iou", "precision", "recall"}
    checkpoint = torch.load(out / "model.pt", weights_only=True)
    assert checkpoint["classes"][0] == "Urban" and "state_dict" in checkpoint
    assert not list(out.glob("*.tmp*"))                      # atomic writes leave no temp files


def test_tiny_run_beats_chance(tiny_run):
    metrics, _ = tiny_run
    # uniform guessing over 5 classes scores 0.2 pixel accuracy; two tiny epochs must do clearly better
    assert metrics["test"]["pixel_accuracy"] > 0.4
    assert metrics["history"][-1]["train_loss"] < metrics["history"][0]["train_loss"]


def test_same_seed_gives_identical_metrics(tiny_run, tmp_path):
    metrics, _ = tiny_run
    again = train(dict(TINY, points=100, out=str(tmp_path)))
    assert again["test"] == metrics["test"]
    assert [h["train_loss"] for h in again["history"]] == [h["train_loss"] for h in metrics["history"]]


def test_confusion_matrix_and_scores_by_hand():
    target = torch.tensor([0, 0, 1, 1, 2, 255])
    prediction = torch.tensor([0, 1, 1, 1, 0, 2])            # the 255 pixel is not scored
    matrix = confusion_matrix(prediction, target, 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    s = scores(matrix, ["a", "b", "c"])
    assert s["per_class"]["a"] == dict(iou=1 / 3, precision=1 / 2, recall=1 / 2)
    assert s["per_class"]["b"]["iou"] == pytest.approx(2 / 3)
    assert s["per_class"]["c"] == dict(iou=0.0, precision=None, recall=0.0)
    assert s["miou"] == pytest.approx((1 / 3 + 2 / 3 + 0) / 3) and s["pixel_accuracy"] == pytest.approx(3 / 5)


def test_metrics_come_from_one_matrix_over_the_split_not_a_mean_of_images():
    # image 1: 1 pixel, all wrong; image 2: 99 pixels, all right -> split accuracy 0.99, not 0.5
    m = confusion_matrix(torch.tensor([1]), torch.tensor([0]), 2) + \
        confusion_matrix(torch.zeros(99, dtype=torch.long), torch.zeros(99, dtype=torch.long), 2)
    assert scores(m, ["a", "b"])["pixel_accuracy"] == pytest.approx(0.99)


def test_predict_tile_covers_any_tile_size_exactly():
    model = UNet(weights=None).eval()
    for h, w in [(64, 64), (50, 130), (97, 33)]:
        logits = predict_tile(model, torch.rand(3, h, w), window=64)
        assert logits.shape == (5, h, w) and torch.isfinite(logits).all()


def test_dense_training_uses_every_pixel(tmp_path):
    metrics = train(dict(TINY, dense=True, epochs=1, out=str(tmp_path)))
    assert metrics["labeled_fraction"] == 1.0


@pytest.mark.parametrize("argv, message", [
    (["--points", "-5"], "--points must be a positive integer, got -5"),
    (["--points-per-class", "0"], "--points-per-class must be a positive integer, got 0"),
    (["--points", "10", "--image-size", "100"], "--image-size must be a multiple of 32, got 100"),
    (["--points-per-class", "5", "--strategy", "grid"], "invalid choice: 'grid'"),
    (["--points", "10", "--weights", "/no/such.pth"], "weights file not found: /no/such.pth"),
    (["--points", "10", "--points-per-class", "3"], "choose exactly one"),
    ([], "choose exactly one"),
    (["--points", "10", "--strategy", "stratified"], "applies to --points-per-class only"),
    (["--points", "ten"], "invalid int value: 'ten'"),
    (["--points", "10", "--seed", "-1"], "--seed must be a non-negative integer, got -1"),
    (["--pionts", "10"], "unrecognized arguments: --pionts"),
    (["--points", "10", "--precision", "fp16"], "argument --precision: invalid choice: 'fp16'"),
    (["--points", "5000", "--image-size", "64", "--train-size", "1", "--val-size", "0", "--test-size", "1"],
     "5000 points per image asked, but the image has only 4096"),
])
def test_bad_flags_exit_2_with_one_line(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(argv + ["--out", str(tmp_path), "--weights", "none"] if "--weights" not in argv else argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert len(err.strip().splitlines()) == 1 and message in err, err


def test_command_line_error_has_no_traceback():
    result = subprocess.run([sys.executable, "train.py", "--points", "10", "--image-size", "100"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == "train.py: error: --image-size must be a multiple of 32, got 100"


def test_bf16_runs_are_recorded_as_such_and_just_as_deterministic(tmp_path):
    runs = [train(dict(TINY, points=100, epochs=1, precision="bf16", out=str(tmp_path / str(i)))) for i in range(2)]
    assert runs[0]["precision"] == "bf16" and runs[0]["torch"] == torch.__version__ and runs[0]["machine"]
    assert runs[0]["test"] == runs[1]["test"] and runs[0]["history"][0]["train_loss"] == runs[1]["history"][0]["train_loss"]


@pytest.mark.parametrize("flags, asked, expected", [
    ("fpu sse avx512_bf16 avx512f", "auto", ("bf16", "CPU has AVX512-BF16")),
    ("fpu amx_bf16 amx_tile", "auto", ("bf16", "CPU has AMX")),
    ("fpu sse avx2", "auto", ("fp32", "CPU has neither AMX nor AVX512-BF16, so bf16 would be slower")),
    ("fpu sse avx2", "bf16", ("bf16", "asked for; CPU has neither AMX nor AVX512-BF16: bf16 is emulated, slower than fp32")),
    ("fpu avx512_bf16", "fp32", ("fp32", "asked for; CPU has AVX512-BF16")),
])
def test_auto_precision_follows_the_cpu_and_says_why(monkeypatch, flags, asked, expected):
    monkeypatch.setattr(device, "cpu_info", lambda field: flags if field == "flags" else "")
    assert device.pick_precision(asked, torch.device("cpu")) == expected


def test_bf16_evaluation_agrees_with_fp32():
    model = UNet(weights=None).eval().to(memory_format=torch.channels_last)
    image = torch.randint(0, 255, (3, 96, 160), dtype=torch.uint8).numpy()
    fp32, bf16 = (predict_tile(model, image, 64, precision=p) for p in ("fp32", "bf16"))
    assert bf16.dtype == torch.float32 and (fp32.argmax(0) == bf16.argmax(0)).float().mean() > 0.9
