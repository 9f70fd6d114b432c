"""lib/averaging.py, train.py --average-last K: the tested weights are the mean of the last K
epochs', with batch-norm statistics recomputed for them; recorded, checked and resumed."""

import pytest
import torch

from conftest import train_killed_after
from lib.averaging import WeightAverage
from lib.settings import DEFAULTS, check_config
from train import train

TINY = dict(
    train_size=8, val_size=4, test_size=4, image_size=64, epochs=3, batch_size=4, weights="none"
)


def test_the_average_is_the_mean_of_the_weights_and_its_batch_norm_the_crops_mean():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))
    crops = [torch.randn(4, 1, 8, 8) + 3 for _ in range(3)]
    average = WeightAverage(model, first=2, crops=lambda: [(c,) for c in crops])
    weights = []
    for epoch in (1, 2, 3):
        with torch.no_grad():
            model[0].weight.normal_()
        weights.append(model[0].weight.clone())
        assert average.update(model, epoch) == (epoch >= 2)  # epoch 1 is not averaged
    assert torch.allclose(average.model[0].weight, (weights[1] + weights[2]) / 2)
    with torch.no_grad():
        features = torch.cat([average.model[0](c) for c in crops])
    expected = features.mean((0, 2, 3))  # equal batches: the mean of the batch means
    assert torch.allclose(average.model[1].running_mean, expected, atol=1e-5)
    assert average.model[1].momentum == model[1].momentum  # put back after the pass


@pytest.mark.slow
def test_with_no_val_split_averaging_the_last_epoch_tests_its_weights_with_new_statistics(
    tmp_path,
):
    """K = 1 and no val split: the same weights as the plain run's last epoch, other batch-norm
    statistics (recomputed on the crops, not the training steps' moving average)."""
    run = dict(TINY, val_size=0, points=100)
    plain = train(dict(run, out=str(tmp_path / "plain")))
    averaged = train(dict(run, average_last=1, out=str(tmp_path / "averaged")))
    ours, theirs = (
        torch.load(tmp_path / name / "model.pt", weights_only=True)["state_dict"]
        for name in ("averaged", "plain")
    )
    assert torch.equal(ours["head.weight"], theirs["head.weight"])
    assert not torch.equal(ours["stem.1.running_var"], theirs["stem.1.running_var"])
    # averaging changes nothing of the training itself, the epochs after an averaged one either:
    # the batch-norm pass draws its crops without touching the run's random stream
    two = train(dict(run, average_last=2, out=str(tmp_path / "two")))
    for run in (averaged, two):
        assert [h["train_loss"] for h in run["history"]] == [
            h["train_loss"] for h in plain["history"]
        ]


@pytest.mark.slow
def test_averaged_epochs_are_validated_and_a_resumed_run_ends_alike(tmp_path):
    run = dict(TINY, points=100, average_last=2)
    whole = train(dict(run, out=str(tmp_path / "whole")))
    averaged = ["val_miou_average" in h for h in whole["history"]]
    assert averaged == [False, True, True]
    train_killed_after(dict(run, out=str(tmp_path / "cut")), epoch=2)
    resumed = train(dict(run, out=str(tmp_path / "cut"), resume=True))
    assert (
        resumed["test"] == whole["test"]
        and resumed["history"][-1]["val_miou_average"] == (whole["history"][-1]["val_miou_average"])
    )


@pytest.mark.parametrize(
    "config, message",
    [
        (dict(average_last=4), "--average-last 4 averages more epochs than the run's 3"),
        (dict(average_last=2, ema=True), "--average-last and --ema both average the weights"),
        (dict(average_last=-1), "--average-last must be a non-negative integer, got -1"),
    ],
)
def test_bad_averaging_is_refused(config, message):
    with pytest.raises(ValueError, match=message):
        check_config({**DEFAULTS, **TINY, "points": 10, **config})
