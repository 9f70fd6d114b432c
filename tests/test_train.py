"""train.py end to end on tiny data: its metrics, its determinism, its choices (its errors:
test_train_errors.py)."""

import json

import pytest
import torch

from lib.checkpoint import load_checkpoint, warm_start
from lib.settings import DATA_DEFAULTS, run_name, settings
from train import train
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


def test_a_tiny_run_records_the_floor_and_its_loss_falls(tiny_run):
    metrics, _ = tiny_run
    # the floor a useful model clears (whether a 2-epoch run clears it depends on the CPU's
    # arithmetic: not asserted): always answering the test split's commonest class
    truth = [sum(row) for row in metrics["test"]["confusion_matrix"]]
    assert metrics["test"]["commonest_class_accuracy"] == pytest.approx(max(truth) / sum(truth))
    assert metrics["history"][-1]["train_loss"] < metrics["history"][0]["train_loss"]


@pytest.mark.slow
def test_same_seed_gives_identical_metrics(tiny_run, tmp_path):
    metrics, _ = tiny_run
    again = train(dict(TINY, points=100, out=str(tmp_path)))
    assert again["test"] == metrics["test"]
    assert [h["train_loss"] for h in again["history"]] == [
        h["train_loss"] for h in metrics["history"]
    ]


@pytest.mark.slow
def test_the_best_epochs_weights_are_tested_when_it_is_not_the_last(monkeypatch, tmp_path):
    import lib.evaluation
    import train as train_module

    snapshots, tested = [], []

    def fake_evaluate(model, split, classes, window, batch_size, precision):
        weights = {k: v.clone() for k, v in model.state_dict().items()}
        snapshots.append(weights)  # validation after epochs 1, 2, 3: epoch 2 is best over the
        epoch = len(snapshots) - 1  # classes in val's masks, though not over every class
        return dict(miou=[0.5, 0.6, 0.7][epoch], miou_in_truth=[0.5, 0.9, 0.7][epoch])

    def fake_evaluate_views(model, *args):
        tested.append({k: v.clone() for k, v in model.state_dict().items()})
        return evaluate_views(model, *args)

    evaluate_views = lib.evaluation.evaluate_views  # what train.py scores with (score_run)
    monkeypatch.setattr(train_module, "evaluate", fake_evaluate)
    monkeypatch.setattr(lib.evaluation, "evaluate_views", fake_evaluate_views)
    metrics = train(dict(TINY, points=100, epochs=3, out=str(tmp_path)))
    assert metrics["best_epoch"] == 2
    assert [(h["val_miou"], h["val_miou_in_truth"]) for h in metrics["history"]] == [
        (0.5, 0.5),
        (0.6, 0.9),
        (0.7, 0.7),
    ]
    assert all(torch.equal(tested[0][k], snapshots[1][k]) for k in snapshots[1])
    assert not all(torch.equal(tested[0][k], snapshots[2][k]) for k in snapshots[2])
    saved = torch.load(tmp_path / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(saved[k], snapshots[1][k]) for k in saved)


def test_dense_training_uses_every_pixel(tmp_path):
    metrics = train(dict(TINY, dense=True, epochs=1, out=str(tmp_path)))
    assert metrics["labeled_fraction"] == 1.0


@pytest.mark.slow
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


def test_tile_folders_get_the_data_defaults_unless_a_flag_says_otherwise():
    # the command line's "not given"
    unset = dict.fromkeys(DATA_DEFAULTS)
    report = settings(dict(points=10, **unset))
    assert (report["epochs"], report["augment"], report["tta"]) == (5, "hflip", False)
    assert (report["prior_shift"], report["tta_zoom_out"]) == (0.0, 1)
    assert report["prior_estimate"] == "em"
    tiles = settings(dict(data="tiles", points=10, **unset))
    assert (
        {k: tiles[k] for k in DATA_DEFAULTS}
        == DATA_DEFAULTS
        == dict(augment="dihedral", epochs=15, tta=True, prior_shift=1.0, tta_zoom_out=3)
        | dict(prior_estimate="mean", average_last=5, forest_weight=0.5, zoom_on_val=True)
        | dict(tile_prior=2.0)
    )
    assert report["tile_prior"] == 0.0  # synthetic scenes: none
    chosen = settings(dict(data="tiles", points=10, **dict(unset, epochs=3, tta_zoom_out=2)))
    assert (chosen["epochs"], chosen["augment"], chosen["tta_zoom_out"]) == (3, "dihedral", 2)
    # the weights of the last third of the epochs averaged, none beside the mean teacher's
    assert chosen["average_last"] == 1 and tiles["average_last"] == 5
    assert settings(dict(data="tiles", points=10, **dict(unset, epochs=30)))["average_last"] == 5
    assert settings(dict(data="tiles", points=10, ema=True, **unset))["average_last"] == 0
    warm = settings(dict(data="tiles", points=10, init="runs/round0", **unset))
    assert warm["average_last"] == 0  # a warm round's 2 epochs
    assert run_name(chosen) == "points10-epochs-3-tta-zoom-out-2-seed0"
    # the zoom is part of the TTA, and dense labels are the pixels' own shares: neither applies;
    # a run not shifted has no shares to pick
    no_tta = settings(dict(data="tiles", points=10, **dict(unset, tta=False)))
    assert (no_tta["tta"], no_tta["tta_zoom_out"], no_tta["prior_shift"]) == (False, 1, 1.0)
    dense = settings(dict(data="tiles", dense=True, **unset))
    assert (dense["prior_shift"], dense["prior_estimate"], dense["tta_zoom_out"]) == (0.0, "em", 3)
    assert dense["forest_weight"] == 0.0  # no clicks to fit the forest on
    # clicks read from files (a person's, proposals answered) follow no known drawing: no shift
    read = settings(dict(data="tiles", **unset))
    assert (read["prior_shift"], read["prior_estimate"]) == (0.0, "em")
    assert settings(dict(data="tiles", points_file="clicks.gpkg", **unset))["prior_shift"] == 0.0
    assert settings(dict(data="tiles", **dict(unset, prior_shift=0.5)))["prior_shift"] == 0.5
    assert settings(dict(data="tiles", dense=True, prior_shift=0.25))["prior_estimate"] == "mean"
    unshifted = settings(dict(data="tiles", points=10, **dict(unset, prior_shift=0.0)))
    assert unshifted["prior_estimate"] == "em"
    geometric = dict(unset, prior_shift=0.0, prior_estimate="geometric")
    assert settings(dict(data="tiles", points=10, **geometric))["prior_estimate"] == "geometric"


@pytest.mark.slow
def test_a_tta_run_records_its_scores_with_and_without(tmp_path):
    metrics = train(
        dict(TINY, points=100, epochs=1, augment="dihedral", tta=True, out=str(tmp_path))
    )
    assert metrics["config"]["augment"] == "dihedral" and metrics["config"]["tta"] is True
    assert (
        set(metrics["test_without_tta"]) == set(metrics["test"])
        and 0 <= metrics["val_miou_tta"] <= 1
    )
    # test seen both ways in one pass, then val
    assert set(metrics["scoring_seconds"]) == {"test", "val_tta"}


@pytest.mark.slow
def test_a_warm_run_starts_from_the_finished_runs_weights(tiny_run, tmp_path):
    """--init: the weights of a finished run, the band statistics this run's; at a learning rate
    too small to move them, the warm run ends where the finished run ended, a cold one does not."""
    _, finished = tiny_run
    still = dict(TINY, points=100, epochs=1, lr=1e-12)
    warm = train(dict(still, init=str(finished), out=str(tmp_path / "warm")))
    cold = train(dict(still, out=str(tmp_path / "cold")))
    weights = lambda run: torch.load(run / "model.pt", weights_only=True)["state_dict"]
    start, ended, fresh = weights(finished), weights(tmp_path / "warm"), weights(tmp_path / "cold")
    assert torch.allclose(ended["head.weight"], start["head.weight"], atol=1e-6)
    assert not torch.allclose(fresh["head.weight"], start["head.weight"], atol=1e-3)
    assert warm["config"]["init"] == str(finished) and cold["config"]["init"] is None


def test_a_warm_start_takes_out_the_shift_its_run_folded_into_the_head(tiny_run, tmp_path):
    """The prior shift is part of how a run is scored, not of what it learnt: a warm round starts
    from the head as trained, and shifts (or not) by its own rule."""
    _, finished = tiny_run
    shifted = tmp_path / "shifted"
    shifted.mkdir()
    (shifted / "model.pt").write_bytes((finished / "model.pt").read_bytes())
    record = json.loads((finished / "metrics.json").read_text())
    logit_shift = [0.5, -0.25, 0.0, 1.0, -1.0]
    record["prior_shift"] = dict(logit_shift=logit_shift)
    (shifted / "metrics.json").write_text(json.dumps(record))
    start, checkpoint = load_checkpoint(finished / "model.pt")
    model = UNet(len(checkpoint["classes"]), "none", checkpoint["bands"])
    warm_start(model, shifted, checkpoint["classes"], checkpoint["bands"])
    expected = start.head.bias - torch.tensor(logit_shift)
    assert torch.allclose(model.head.bias, expected)
    (shifted / "metrics.json").write_text("{not json")
    with pytest.raises(ValueError, match="metrics.json is not a run's metrics.json"):
        warm_start(model, shifted, checkpoint["classes"], checkpoint["bands"])
