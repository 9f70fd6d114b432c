"""lib/teacher.py: the mean teacher's update, its targets on the unclicked pixels, train.py's levers
that use them, and how the results page chooses among them."""

import json
import math
import shutil

import pytest
import torch

from lib.teacher import (
    MeanTeacher,
    confident_labels,
    grow_regions,
    ramp_up,
    strong_view,
)
from pce import UNLABELED
from reporting.unclicked_report import unclicked
from train import main, train
from unet import UNet

TINY = dict(
    train_size=8,
    val_size=2,
    test_size=2,
    image_size=64,
    epochs=2,
    batch_size=4,
    weights="none",
    points_per_class=5,
)


def test_the_mean_teacher_averages_weights_and_buffers_with_a_warmed_up_decay():
    torch.manual_seed(0)
    student = UNet(3, weights=None)
    teacher = MeanTeacher(student, decay=0.99)
    assert teacher.current_decay() == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    before = {k: v.clone() for k, v in teacher.model.state_dict().items()}
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
        student.head.bias.add_(1.0)  # moved by 2
    student.stem[1].num_batches_tracked.fill_(7)
    teacher.update(student)
    after, now = teacher.model.state_dict(), student.state_dict()
    for name, value in after.items():
        if value.dtype.is_floating_point:  # θ' = 0.1 θ' + 0.9 θ
            assert torch.allclose(value, 0.1 * before[name] + 0.9 * now[name], atol=1e-6), name
    assert int(after["stem.1.num_batches_tracked"]) == 7  # counts are copied
    assert not any(p.requires_grad for p in teacher.model.parameters())
    teacher.steps = 10_000
    assert teacher.current_decay() == 0.99  # warmed up: the decay asked for


def test_the_ramp_goes_from_about_zero_to_one_over_the_first_third():
    values = [ramp_up(step, 300) for step in range(0, 301, 25)]
    assert values[0] == pytest.approx(math.exp(-5)) and values == sorted(values)
    assert ramp_up(100, 300) == 1.0 and ramp_up(300, 300) == 1.0


def probabilities_of(classes, sure=0.95, num_classes=3):
    """One-hot-ish probabilities (N, C, H, W) for a class map (N, H, W): `sure` on its class."""
    rest = (1 - sure) / (num_classes - 1)
    one_hot = torch.nn.functional.one_hot(classes, num_classes).permute(0, 3, 1, 2).float()
    return one_hot * (sure - rest) + rest


def test_confident_targets_never_overwrite_a_click_and_skip_unsure_pixels():
    classes = torch.tensor([[[0, 1, 2, 2]]])
    probabilities = probabilities_of(classes)
    probabilities[0, :, 0, 3] = torch.tensor([0.2, 0.3, 0.5])  # unsure
    clicks = torch.tensor([[[UNLABELED, 0, UNLABELED, UNLABELED]]])  # a click that disagrees
    labels = confident_labels(probabilities, clicks, 0.9)
    assert labels.tolist() == [[[0, UNLABELED, 2, UNLABELED]]]


def test_capped_confident_targets_keep_at_most_that_many_per_class_and_image():
    classes = torch.zeros(2, 16, 16, dtype=torch.long)
    classes[0, :2] = 1  # 32 pixels of class 1, 224 of class 0
    classes[1, :, :1] = 2  # 16 of class 2, 240 of class 0
    clicks = torch.full((2, 16, 16), UNLABELED)
    clicks[0, 8, 8] = 2  # a click that disagrees, and is still never overwritten
    uncapped = confident_labels(probabilities_of(classes), clicks, 0.9)
    torch.manual_seed(0)
    labels = confident_labels(probabilities_of(classes), clicks, 0.9, per_class=20)
    counts = [[int((labels[i] == c).sum()) for c in range(3)] for i in range(2)]
    assert counts == [[20, 20, 0], [20, 0, 16]]  # a class with fewer keeps them all
    assert labels[0, 8, 8] == UNLABELED
    kept = labels != UNLABELED
    assert (labels[kept] == uncapped[kept]).all()  # a subset of the uncapped targets
    torch.manual_seed(1)  # another draw keeps other pixels
    assert not (confident_labels(probabilities_of(classes), clicks, 0.9, 20) == labels).all()


def test_region_growing_follows_the_teacher_and_never_crosses_into_another_class():
    # the teacher: class 0 on the left half, class 1 on the right, a sure-of-nothing column between
    # two class-1 areas; clicks: one class 0 at (0, 0), one class 1 at (0, 7)
    classes = torch.zeros(1, 6, 12, dtype=torch.long)
    classes[:, :, 6:] = 1
    probabilities = probabilities_of(classes, num_classes=2)
    probabilities[:, :, :, 9] = 0.5  # unsure: cuts the class-1 area in two
    clicks = torch.full((1, 6, 12), UNLABELED)
    clicks[0, 0, 0], clicks[0, 0, 7] = 0, 1
    grown = grow_regions(probabilities, clicks, 0.9)
    assert (grown[0, :, :6] == 0).sum() == 6 * 6 - 1  # the left half, less the click itself
    assert (grown[0, :, 6:9] == 1).sum() == 6 * 3 - 1  # up to the unsure column
    assert (grown[0, :, 9:] == UNLABELED).all()  # not across it
    assert grown[0, 0, 0] == UNLABELED and grown[0, 0, 7] == UNLABELED  # clicks stay clicks
    # a click the teacher disagrees with spreads nowhere, and never into the other class's area
    clicks[0, 0, 7] = 0
    grown = grow_regions(probabilities, clicks, 0.9)
    assert (grown[0, :, 6:] == UNLABELED).all()


def test_the_strong_view_moves_every_label_with_its_pixel():
    # one band whose value says the pixel's click (or -1): after CutMix and the jitter, which is
    # one increasing map per image, a value in an image still means one label
    torch.manual_seed(0)
    clicks = torch.full((4, 16, 16), UNLABELED)
    for i in range(4):
        clicks[i, torch.randint(0, 16, (6,)), torch.randint(0, 16, (6,))] = i
    images = (clicks[:, None] + 2).float() * 10
    view, view_clicks, ((targets, weight),) = strong_view(images, clicks, [(clicks.clone(), 0.5)])
    assert weight == 0.5 and torch.equal(targets, view_clicks)
    assert view.shape == images.shape and not torch.equal(view, images)
    mixed = 0
    for i in range(4):
        values = {round(float(v), 3): set() for v in view[i, 0].flatten()}
        for v, label in zip(view[i, 0].flatten(), view_clicks[i].flatten()):
            values[round(float(v), 3)].add(int(label))
        assert all(len(labels) == 1 for labels in values.values())  # label and pixel moved as one
        from_others = set(view_clicks[i].unique().tolist()) - {UNLABELED, i}
        mixed += bool(from_others)
    assert mixed  # some image got a box of another's pixels, and its clicks


@pytest.mark.slow
@pytest.mark.parametrize("sure_per_class", [0, 16])
def test_the_levers_train_and_give_the_same_numbers_for_the_same_seed(tmp_path, sure_per_class):
    config = dict(TINY, ema=True, consistency=1.0, grow=True, prior_shift=0.5)
    config["sure_per_class"] = sure_per_class  # all the teacher's sure pixels, or 16 a class
    first = train(dict(config, out=str(tmp_path / "a")))
    second = train(dict(config, out=str(tmp_path / "b")))
    plain = train(dict(TINY, out=str(tmp_path / "c")))
    assert first["test"] == second["test"] and first["history"] == [
        dict(h, seconds=s["seconds"]) for h, s in zip(second["history"], first["history"])
    ]
    assert first["history"][0]["train_loss"] != plain["history"][0]["train_loss"]
    assert len(first["prior_shift"]["logit_shift"]) == 5 and "prior_shift" not in plain


def test_ema_scores_and_saves_the_teacher_not_the_student(tmp_path, monkeypatch):
    from lib import teacher as teacher_module

    teachers = []
    real = teacher_module.MeanTeacher

    def keep(*args, **kwargs):
        teachers.append(real(*args, **kwargs))
        return teachers[-1]

    monkeypatch.setattr(teacher_module, "MeanTeacher", keep)
    run = train(dict(TINY, ema=True, val_size=0, out=str(tmp_path / "ema")))
    saved = torch.load(tmp_path / "ema" / "model.pt", weights_only=True)["state_dict"]
    teacher = teachers[0].model.state_dict()
    assert all(torch.equal(saved[k], teacher[k]) for k in teacher)
    assert run["config"]["ema"] and teachers[0].steps == run["config"]["epochs"] * 2


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--ema-decay", "1"], "--ema-decay must be in [0, 1), got 1.0"),
        (["--confidence", "1.5"], "--confidence must be in (0, 1), got 1.5"),
        (["--consistency", "-1"], "--consistency must be >= 0, got -1.0"),
        (["--paste", "-2"], "--paste must be a non-negative integer, got -2"),
        (["--sure-per-class", "-1"], "--sure-per-class must be a non-negative integer, got -1"),
        (["--sure-per-class", "8"], "caps --consistency's targets: it needs --consistency W"),
        (["--prior-shift", "1.5"], "--prior-shift must be in [0, 1], got 1.5"),
        (
            ["--prior-estimate", "mean"],
            "--prior-estimate mean picks the shares --prior-shift S "
            "shifts to: it needs --prior-shift",
        ),
        (["--tta-zoom-out", "0"], "--tta-zoom-out must be a positive integer, got 0"),
        (["--tta-zoom-out", "2"], "--tta-zoom-out 2 is test-time augmentation: it needs --tta"),
    ],
)
def test_bad_lever_values_are_one_line(flags, named, capsys, tmp_path):
    with pytest.raises(SystemExit) as stop:
        main(["--points", "5", "--out", str(tmp_path / "x"), *flags])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(named)
    assert not (tmp_path / "x").exists()


def test_a_lever_is_kept_only_when_it_beats_the_tile_recipe_on_val_beyond_noise(tmp_path):
    def run(folder, seed, val, test=0.8, **more):
        per_class = {k: dict(iou=test) for k in ("a", "b")}
        metrics = dict(
            **more,
            config=dict(seed=seed),
            classes=["a", "b"],
            val_miou_tta=val,
            test=dict(miou=test, pixel_accuracy=0.9, per_class=per_class),
            wall_time_s=100.0,
            machine="CPU",
            precision="fp32",
            torch="2",
            encoder_init="random",
        )
        path = tmp_path / "set" / (folder + (f"-seed{seed}" if seed else ""))
        path.mkdir(parents=True)
        (path / "metrics.json").write_text(json.dumps(metrics))

    levers = [["tile recipe", "tile-recipe"], ["+ steady", "steady"], ["+ noisy", "noisy"]]
    plan = dict(unclicked=levers, forest="forest", unclicked_margin_over_forest={"set": 0.08})
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    for seed, (base, steady, noisy) in enumerate([(0.70, 0.71, 0.80), (0.72, 0.73, 0.65)]):
        run("forest", seed, 0.6, test=0.7)
        run("unclicked/tile-recipe", seed, base)
        run("unclicked/steady", seed, steady, test=0.85)  # +0.01 on both seeds: beyond noise
        again = dict(rescored_from="set/unclicked/tile-recipe") if seed else {}
        run("unclicked/noisy", seed, noisy, **again)  # the best mean gain, +0.015, but it swings
    text = "\n".join(unclicked(tmp_path))
    assert "**+ steady** (it beats the tile recipe on val beyond noise, by +0.0100)" in text
    assert "Machine: CPU, fp32" in text and "Made elsewhere" not in text
    elsewhere = tmp_path / "set" / "unclicked" / "noisy-seed1" / "metrics.json"
    moved = json.loads(elsewhere.read_text())
    elsewhere.write_text(json.dumps(dict(moved, machine="Other CPU", precision="bf16")))
    text = "\n".join(unclicked(tmp_path))
    assert "Made elsewhere: + noisy, seed 1: Other CPU, bf16." in text
    assert "| + noisy (rescored: seed 1) | 0, 1 |" in text and "+ steady (rescored" not in text
    for folder in ("steady", "steady-seed1"):
        shutil.rmtree(tmp_path / "set" / "unclicked" / folder)
    text = "\n".join(unclicked(tmp_path))
    assert "**tile recipe** (no lever beats it on val beyond noise; the closest, + noisy" in text
