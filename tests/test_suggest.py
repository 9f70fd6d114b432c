"""suggest.py: where the proposals go, what they avoid, and the person's loop around them."""

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import suggest
from conftest import FAST
from lib import annotations
from train import main as train_main
from train import train

REGION = (slice(20, 40), slice(20, 40))  # where the stand-in model is unsure


@pytest.fixture
def trained(exported, tmp_path):
    """A copy of the exported scenes (suggest.py writes into its folder) and a run on 2 clicks per
    class."""
    root = tmp_path / "scenes"
    shutil.copytree(exported, root)
    train(dict(FAST, data=str(root), points_per_class=2, out=str(tmp_path / "run")))
    return root, tmp_path / "run"


def unsure_in_region(model, image, window, precision="fp32"):
    """Logits sure of class 0 everywhere but REGION, where all classes tie."""
    logits = torch.zeros(5, *image.shape[-2:])
    logits[0] = 10
    logits[0][REGION] = 0
    return logits


def spaced(points, spacing):
    return all(
        max(abs(a[0] - b[0]), abs(a[1] - b[1])) >= spacing
        for i, a in enumerate(points)
        for b in points[:i]
    )


def test_candidates_are_least_sure_first_spaced_and_never_blocked():
    rng = np.random.default_rng(0)
    margin = rng.random((40, 50))
    blocked = np.zeros_like(margin, bool)
    blocked[:, :10] = True
    margin[:, :10] = -1  # the least sure pixels, but blocked
    taken = suggest.candidates(margin, blocked, spacing=5, limit=30)
    assert len(taken) == 30 and spaced(taken, 5) and all(x >= 10 for _, x in taken)
    assert taken[0] == np.unravel_index(np.argmin(np.where(blocked, 9, margin)), margin.shape)


def test_candidates_by_slices_of_the_order_are_those_of_one_full_sort():
    def full_sort(margin, blocked, spacing, limit):  # the whole tile's argsort, greedy
        free, taken = ~blocked, []
        for flat in np.argsort(np.where(blocked, np.inf, margin), axis=None, kind="stable"):
            y, x = divmod(int(flat), margin.shape[1])
            if blocked[y, x] or len(taken) == limit:
                break
            if free[y, x]:
                taken.append((y, x))
                free[
                    max(0, y - spacing + 1) : y + spacing, max(0, x - spacing + 1) : x + spacing
                ] = False
        return taken

    rng = np.random.default_rng(1)
    for trial in range(60):
        margin = rng.random(tuple(rng.integers(1, 70, 2))).astype(np.float32)
        if trial % 2:
            margin = np.round(margin * 4) / 4  # ties: row by row in both
        blocked, spacing, limit = (
            rng.random(margin.shape) < rng.random(),
            int(rng.integers(1, 9)),
            int(rng.integers(1, 150)),
        )
        assert suggest.candidates(margin, blocked, spacing, limit) == full_sort(
            margin, blocked, spacing, limit
        )


def test_each_predicted_class_is_asked_in_turn_and_tiles_are_capped():
    pool = [(0.01 * i, i % 3, i, 0, 0) for i in range(30)] + [(0.5, 5, 0, 0, 3), (0.6, 6, 0, 0, 3)]
    chosen = suggest.choose(pool, 6, per_tile=2)
    assert sum(e[4] == 3 for e in chosen) == 2  # the rare class gets its turns
    assert max(sum(e[1] == t for e in chosen) for t in range(7)) <= 2


@pytest.mark.slow
def test_proposals_land_where_the_model_is_unsure_away_from_clicks_and_unknown_pixels(
    trained, monkeypatch, tmp_path
):
    root, run = trained
    mask_path = root / "train" / "masks" / "scene_0000.png"
    mask = np.asarray(Image.open(mask_path)).copy()
    mask[REGION] = 255  # tile 0's unsure region is unknown
    Image.fromarray(mask).save(mask_path)
    monkeypatch.setattr(suggest, "predict_tile", unsure_in_region)
    chosen = suggest.suggest(run, root, 8, 6, tmp_path / "previews", "cpu", "fp32")
    per_tile = {t: sum(e[1] == t for e in chosen) for t in {e[1] for e in chosen}}
    # ceil(2 * 8 / 4 tiles)
    assert len(chosen) == 8 and 0 not in per_tile and max(per_tile.values()) <= 4
    for stem in (f"scene_{t:04d}" for t in per_tile):
        old = annotations.read_clicks(
            run / "clicks" / f"{stem}.csv", (64, 64), annotations.read_legend(root).names
        )
        rows = (root / "train" / "points" / f"{stem}.csv").read_text().splitlines()[1:]
        kept, proposed = rows[: old.rows.size], [r for r in rows[old.rows.size :]]
        assert kept == [
            f"{x},{y},{annotations.read_legend(root).names[k]}"
            for y, x, k in zip(old.rows, old.cols, old.classes)
        ]
        points = [(int(r.split(",")[1]), int(r.split(",")[0])) for r in proposed]
        assert proposed and all(r.endswith(",") for r in proposed) and spaced(points, 6)
        assert all(20 <= y < 40 and 20 <= x < 40 for y, x in points)
        assert all(
            max(abs(y - cy), abs(x - cx)) >= 6
            for y, x in points
            for cy, cx in zip(old.rows, old.cols)
        )
        assert (tmp_path / "previews" / f"{stem}.png").is_file()
    assert not (tmp_path / "previews" / "scene_0000.png").exists()
    assert (root / "train" / "points" / "scene_0000.csv").is_file()  # its clicks are kept too


def test_the_same_run_and_folder_give_the_same_proposals(trained, tmp_path):
    root, run = trained
    shutil.copytree(root, tmp_path / "again")
    suggest.suggest(run, root, 10, 4, tmp_path / "p1", "cpu", "fp32")
    suggest.suggest(run, tmp_path / "again", 10, 4, tmp_path / "p2", "cpu", "fp32")
    for path in sorted((root / "train" / "points").iterdir()):
        assert path.read_text() == (tmp_path / "again" / "train" / "points" / path.name).read_text()


def test_an_unlabelled_proposal_stops_training_with_its_file_and_row(trained, capsys, tmp_path):
    root, run = trained
    suggest.main([str(run), str(root), "--clicks", "3", "--device", "cpu"])
    path = next(
        p for p in sorted((root / "train" / "points").iterdir()) if p.read_text().endswith(",\n")
    )
    row = (
        path.read_text()
        .splitlines()
        .index(next(r for r in path.read_text().splitlines() if r.endswith(",")))
        + 1
    )
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        train_main(["--data", str(root), "--weights", "none", "--out", str(tmp_path / "r2")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1
    assert f"{path}:{row}: the click at" in err and "has no class yet" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--clicks", "0"], "--clicks and --spacing must be positive integers, got 0"),
        (["--clicks", "5", "--spacing", "-1"], "got 5 and -1"),
        ([], "the following arguments are required: --clicks"),
    ],
)
def test_bad_flags_exit_2_with_one_line(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        suggest.main([str(tmp_path), str(tmp_path)] + argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1 and message in err, err


def test_a_run_without_clicks_is_refused(exported, tmp_path, capsys):
    train(dict(FAST, data=str(exported), dense=True, out=str(tmp_path / "dense")))
    with pytest.raises(SystemExit):
        suggest.main([str(tmp_path / "dense"), str(exported), "--clicks", "5"])
    assert "hold no clicks" in capsys.readouterr().err
