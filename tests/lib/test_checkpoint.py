"""train.py --resume: an interrupted run goes on from its last saved epoch and ends as if it had not
stopped."""

import json
import shutil

import pytest
import torch

from conftest import train_killed_after
from lib import checkpoint
from lib.settings import DEFAULTS
from train import main, train

TINY = dict(
    train_size=16,
    val_size=4,
    test_size=4,
    image_size=64,
    epochs=2,
    batch_size=4,
    weights="none",
    points=100,
    # the mean teacher and its targets, the pasted boxes and the photometric changes: their state
    # and random draws go on from resume.pt too
    paste=2,
    photometric=0.2,
    ema=True,
    consistency=0.5,
    grow=True,
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted run (whole/), and the same run killed after epoch 1 (cut/, and a copy of its
    state in copy/)."""
    root = tmp_path_factory.mktemp("resume")
    whole = train(dict(TINY, out=str(root / "whole")))
    train_killed_after(dict(TINY, out=str(root / "cut")), epoch=1)
    (root / "copy").mkdir()
    shutil.copy(root / "cut" / "resume.pt", root / "copy" / "resume.pt")
    return root, whole


@pytest.mark.slow
def test_a_resumed_run_ends_with_the_uninterrupted_runs_numbers(runs):
    root, whole = runs
    assert (
        not (root / "cut" / "metrics.json").exists() and not (root / "whole" / "resume.pt").exists()
    )
    resumed = train(dict(TINY, out=str(root / "cut"), resume=True))
    assert resumed["test"] == whole["test"]
    assert [(h["epoch"], h["train_loss"], h["val_miou"]) for h in resumed["history"]] == [
        (h["epoch"], h["train_loss"], h["val_miou"]) for h in whole["history"]
    ]
    assert resumed["best_epoch"] == whole["best_epoch"]
    assert dict(resumed["config"], out=None) == dict(whole["config"], out=None)
    assert resumed["resumed_after_epochs"] == [1] and "resumed_after_epochs" not in whole
    assert not (root / "cut" / "resume.pt").exists()  # a whole run leaves nothing to go on from
    ours, theirs = (
        torch.load(root / run / "model.pt", weights_only=True)["state_dict"]
        for run in ("cut", "whole")
    )
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_resume_refuses_other_flags_and_a_missing_state(runs, capsys):
    root, _ = runs
    flags = (
        "--points 100 --train-size 16 --val-size 4 --test-size "
        "4 --image-size 64 --batch-size 4 --weights none --ema --consistency 0.5 --grow --resume"
    ).split()
    (root / "broken").mkdir()
    (root / "broken" / "resume.pt").write_bytes(b"not a torch file")
    for given, named in (
        (["--epochs", "5", "--out", str(root / "copy")], "epochs=2, this one has epochs=5"),
        (["--out", str(root / "elsewhere")], "elsewhere/resume.pt not found"),
        (["--out", str(root / "broken")], "broken/resume.pt is not the state of a train.py run"),
    ):
        with pytest.raises(SystemExit) as stop:
            main(flags + given)
        assert stop.value.code == 2
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert "--resume" in error and named in error
    state = torch.load(root / "copy" / "resume.pt", weights_only=True)
    assert state["epoch"] == 1 and json.loads(state["config"])["epochs"] == 2


def test_resume_compares_paths_as_the_folders_they_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiles").mkdir()
    for saved, given in (
        ("tiles", "tiles/"),
        ("tiles", str(tmp_path / "tiles")),
        ("./tiles", "tiles"),
    ):
        assert checkpoint.same("data", saved, given)
    assert checkpoint.same(
        "points_file", ["a.gpkg", "b.gpkg"], ["./a.gpkg", str(tmp_path / "b.gpkg")]
    )
    assert not checkpoint.same("data", "tiles", "other")
    assert not checkpoint.same("epochs", 2, 5) and not checkpoint.same("data", None, "tiles")


def test_a_flag_added_since_the_state_was_saved_counts_at_its_default(tmp_path):
    # a run interrupted before --prior-estimate existed shifted by EM's shares, the flag's default
    config = dict(DEFAULTS, data="tiles", points=100, prior_shift=0.5)
    saved = {k: v for k, v in config.items() if k != "prior_estimate"}
    torch.save(dict(config=json.dumps(saved, sort_keys=True)), tmp_path / "resume.pt")
    assert checkpoint.read_progress(tmp_path / "resume.pt", config)["config"]
    with pytest.raises(ValueError, match="prior_estimate='em', this one has prior_estimate='mean'"):
        checkpoint.read_progress(tmp_path / "resume.pt", dict(config, prior_estimate="mean"))
