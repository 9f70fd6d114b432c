"""active.py: the oracle labels exactly what the masks say, random clicks go only where clicks may,
a training
cut short resumes; and loop_report.py reports a loop against its targets."""

import json
import shutil

import numpy as np
import pytest

from data import IGNORE
from scripts import active

pytestmark = pytest.mark.slow  # the whole file: see pyproject.toml's markers


@pytest.fixture
def work(exported, tmp_path):
    """A workspace over the exported scenes, each training tile with two hand-made clicks."""
    work = tmp_path / "work"
    active.workspace(exported, work)
    for path in sorted((exported / "train" / "masks").iterdir()):
        (work / "train" / "points" / f"{path.stem}.csv").write_text(
            "x,y,class\n3,4,Urban\n10,20,Road\n"
        )
    return work


def test_the_oracle_labels_each_empty_row_from_the_mask(work):
    path = work / "train" / "points" / "scene_0001.csv"
    path.write_text(path.read_text() + "5,7,\n60,33,\n")
    assert active.label_proposals(work) == 2
    masks, names = active.masks_and_clicks(work, with_clicks=False)
    mask = masks["scene_0001"][0]
    assert path.read_text().splitlines()[1:] == [
        "3,4,Urban",
        "10,20,Road",
        f"5,7,{names[mask[7, 5]]}",
        f"60,33,{names[mask[33, 60]]}",
    ]  # hand-made ones kept


def test_random_clicks_avoid_clicks_and_unknown_pixels_and_carry_the_masks_class(work, exported):
    mask_path = exported / "train" / "masks" / "scene_0002.png"
    original = mask_path.read_bytes()
    try:
        from PIL import Image

        mask = np.asarray(Image.open(mask_path)).copy()
        mask[:, 8:] = IGNORE  # only 8 columns left to click
        Image.fromarray(mask).save(mask_path)
        assert active.add_random_clicks(work, 3000, np.random.default_rng(0)) == 3000
        tiles_now, names = active.masks_and_clicks(work)
        total = 0
        for stem, (mask, clicks) in tiles_now.items():
            # the old two first
            assert (clicks.rows[:2].tolist(), clicks.cols[:2].tolist()) == ([4, 20], [3, 10])
            # no pixel twice
            assert len(set(zip(clicks.rows.tolist(), clicks.cols.tolist()))) == clicks.rows.size
            assert (np.asarray(mask)[clicks.rows[2:], clicks.cols[2:]] == clicks.classes[2:]).all()
            total += clicks.rows.size - 2
        assert total == 3000 and (tiles_now["scene_0002"][1].cols[2:] < 8).all()
    finally:
        mask_path.write_bytes(original)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--clicks", "0"], "must be positive, got 3, 0 and 2"),
        (["--clicks", "5", "--data", "/no/such"], "/no/such/train/masks: not found"),
    ],
)
def test_bad_flags_exit_2_with_one_line(argv, message, capsys, tmp_path, exported):
    argv = argv if "--data" in argv else argv + ["--data", str(exported)]
    with pytest.raises(SystemExit) as exit_info:
        active.main(argv + ["--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1 and message in err, err


def test_the_loop_runs_each_round_once_and_resumes_where_it_stopped(exported, tmp_path, capsys):
    argv = [
        "--data",
        str(exported),
        "--rounds",
        "1",
        "--clicks",
        "10",
        "--out",
        str(tmp_path / "loop"),
        "--train-flags",
        "--epochs 1 --batch-size 2 --image-size 64 --weights none --augment hflip --no-tta",
    ]
    active.main(argv)
    curves = __import__("json").loads((tmp_path / "loop" / "curves.json").read_text())
    for strategy in active.STRATEGIES:
        start, after = curves[strategy]["0"]
        assert after["clicks"] == start["clicks"] + 10 and 0 <= after["miou"] <= 1
    logs = sorted((tmp_path / "loop").glob("*/**/train.log"))
    stamps = [log.stat().st_mtime_ns for log in logs]
    capsys.readouterr()
    # nothing left to train; in a fresh checkout the runs' clicks/ copies are not there (they are
    # not committed), and the counts still come out the same, from the records
    for copy in (tmp_path / "loop").glob("**/clicks"):
        shutil.rmtree(copy)
    active.main(argv)
    assert [log.stat().st_mtime_ns for log in logs] == stamps and len(logs) == 3
    again = json.loads((tmp_path / "loop" / "curves.json").read_text())
    assert [p["clicks"] for s in active.STRATEGIES for p in again[s]["0"]] == [
        p["clicks"] for s in active.STRATEGIES for p in curves[s]["0"]
    ]


def test_rounds_train_warm_and_the_last_also_from_scratch_on_the_same_clicks(exported, tmp_path):
    out = tmp_path / "loop"
    tiny = "--epochs 1 --batch-size 2 --image-size 64 --weights none --augment hflip --no-tta"
    argv = ["--data", str(exported), "--rounds", "1", "--clicks", "10", "--out", str(out)]
    active.main(argv + ["--strategies", "random", "--scratch-last", "--train-flags", tiny])
    config = lambda run: json.loads((out / run / "metrics.json").read_text())["config"]
    assert config("random-seed0/round1")["init"] == str(out / "start-seed0")
    assert config("random-seed0/round1-scratch")["init"] is None
    clicks = lambda run: {p.name: p.read_text() for p in (out / run / "clicks").glob("*.csv")}
    assert clicks("random-seed0/round1") == clicks("random-seed0/round1-scratch")
    curves = json.loads((out / "curves.json").read_text())
    assert set(curves) == {"config", "random"} and curves["config"]["warm"]
    start, warm = curves["random"]["0"]
    assert warm["warm"] and not start["warm"] and warm["wall_s"] > 0
    # --no-tta: the test split scored once, and that time is the round's, kept apart
    tested = json.loads((out / "random-seed0/round1/metrics.json").read_text())["scoring_seconds"]
    assert warm["test_scoring_s"] == tested["test"] and 0 < tested["test"] < warm["wall_s"]
    assert warm["scratch"]["clicks"] == warm["clicks"] == start["clicks"] + 10
    from reporting.loop_report import labelling_loops

    (tmp_path / "active").mkdir()
    (out).rename(tmp_path / "active" / "loop")
    text = "\n".join(labelling_loops(tmp_path))
    assert "## Warm rounds: loop" in text and "| random | 0 | 1 (warm) | " in text
    assert "a warm round ≤ 0.25 of the round from scratch's wall time" in text
    assert "(test scoring left out: worst " in text


def test_a_training_cut_short_is_resumed_and_its_log_kept(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(active.subprocess, "call", lambda command, **kw: calls.append(command) or 0)
    log = tmp_path / "train.log"
    active.logged(["train.py", "--data", "w", "--out", str(tmp_path)], log)
    log.write_text(log.read_text() + "epoch 1/10 ...\n")
    (tmp_path / "resume.pt").write_bytes(b"state")
    active.logged(["train.py", "--data", "w", "--out", str(tmp_path)], log)
    assert "--resume" not in calls[0] and calls[1][-1] == "--resume"
    text = log.read_text()
    assert (
        "epoch 1/10" in text
        and text.count("$ python train.py") == 2
        and text.rstrip().endswith("exit 0")
    )


def test_the_dubai_loop_is_reported_against_its_dense_target(tmp_path):
    from reporting.loop_report import labelling_loops

    point = lambda miou: dict(clicks=100, miou=miou, pixel_accuracy=0.8, per_class={"Water": miou})
    (tmp_path / "active" / "dubai").mkdir(parents=True)
    (tmp_path / "plan.json").write_text(json.dumps({"loop_share_of_dense": {"dubai": 0.95}}))
    (tmp_path / "active" / "dubai" / "curves.json").write_text(
        json.dumps(
            dict(
                config=dict(
                    data="dubai", rounds=1, clicks=50, start_per_class=2, train_flags="--no-tta"
                ),
                proposed={"0": [point(0.4), point(0.54)]},
                random={"0": [point(0.4), point(0.5)]},
            )
        )
    )
    (tmp_path / "dubai" / "dense").mkdir(parents=True)
    (tmp_path / "dubai" / "dense" / "metrics.json").write_text(
        json.dumps(
            dict(
                config=dict(seed=0),
                machine="a CPU",
                test=dict(miou=0.7, pixel_accuracy=0.9),
                test_without_tta=dict(miou=0.6, pixel_accuracy=0.85),
            )
        )
    )
    text = "\n".join(labelling_loops(tmp_path))
    assert "test mIoU 0.6000" in text  # the dense model scored as the rounds were: no TTA
    assert (
        "Target: proposed clicks ≥ 0.95x the dense model's mIoU: 0.900x, missed by 0.050x (0.0300 "
        "mIoU)." in text
    )
