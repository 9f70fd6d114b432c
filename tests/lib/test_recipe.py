"""Extra targets: another model's class maps of the training tiles, learned from beside the clicks
(train.py --extra-targets; made by baseline.py --predict-train or predict.py --min-confidence)."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

import baseline
import predict
from clicks import Clicks
from conftest import FAST, own_folder
from lib import tiles
from lib.crops import PointDataset, dihedral
from lib.recipe import make_optimizer, train_step
from pce import partial_cross_entropy
from train import main, train


def write_maps(folder, maps):
    folder.mkdir(parents=True, exist_ok=True)
    for stem, class_map in maps.items():
        Image.fromarray(class_map.astype(np.uint8)).save(folder / f"{stem}_classes.png")
    return folder


def test_a_target_crop_turns_with_its_image_and_unknown_becomes_unlabeled():
    image = np.arange(2 * 40 * 40, dtype=np.float32).reshape(2, 40, 40)
    target = np.random.default_rng(0).integers(0, 3, (40, 40)).astype(np.uint8)
    target[:5] = 255
    clicks = Clicks(np.array([7]), np.array([9]), np.array([2]))
    dataset = PointDataset([image], [clicks], 32, targets=[target])
    for turn in range(8):
        crop, point_labels, target_labels = dataset[0, 3, 4, turn]
        expected = np.where(target[3:35, 4:36] == 255, -1, target[3:35, 4:36].astype(np.int64))
        assert torch.equal(target_labels, torch.from_numpy(dihedral(expected, turn).copy()))
        assert torch.equal(crop, torch.from_numpy(dihedral(image[:, 3:35, 4:36], turn).copy()))
    assert len(PointDataset([image], [clicks], 32)[0, 3, 4, 0]) == 2  # without targets: as before


def test_the_step_adds_the_weighted_pce_of_the_extra_targets():
    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 4, 1)
    images = torch.randn(2, 3, 8, 8)
    clicks = torch.full((2, 8, 8), -1)
    clicks[0, 1, 1], clicks[1, 5, 2] = 3, 0
    targets = torch.randint(-1, 4, (2, 8, 8))
    with torch.no_grad():
        logits = model(images)
        expected = partial_cross_entropy(logits, clicks) + 0.3 * partial_cross_entropy(
            logits, targets
        )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = train_step(model, optimizer, images, clicks, "fp32", extras=[(targets, 0.3)])
    assert loss == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.slow
def test_targets_that_say_nothing_change_nothing(tmp_path):
    root = own_folder(tmp_path / "own")
    empty = write_maps(tmp_path / "empty", {f"t{i}": np.full((50, 90), 255) for i in range(2)})
    plain = train(dict(FAST, data=str(root), out=str(tmp_path / "a")))
    with_empty = train(
        dict(FAST, data=str(root), extra_targets=str(empty), out=str(tmp_path / "b"))
    )
    assert plain["test"] == with_empty["test"] and with_empty["config"]["extra_targets"] == str(
        empty
    )


@pytest.mark.slow
def test_a_runs_maps_reach_its_loss(tmp_path):
    # clicks on "dark" only; the maps say the right half is "bright". What the network then learns
    # varies with the CPU's arithmetic; that the maps' pCE is in every step does not: the run's
    # loss is the clicks' (soon near 0) plus half the maps' (near log 2 for the unclicked class)
    root = own_folder(tmp_path / "own")
    for i in range(2):
        (root / "train" / "points" / f"t{i}.csv").write_text("x,y,class\n3,4,dark\n10,30,dark\n")
    mask = np.zeros((50, 90), np.uint8)
    mask[:, 45:] = 1
    maps = write_maps(tmp_path / "maps", {"t0": mask, "t1": mask})
    config = dict(FAST, data=str(root), epochs=2)
    without = train(dict(config, out=str(tmp_path / "a")))
    learned = train(dict(config, extra_targets=str(maps), out=str(tmp_path / "b")))
    for epoch in range(2):
        assert (
            learned["history"][epoch]["train_loss"] > without["history"][epoch]["train_loss"] + 0.1
        )


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda d: {"t0": np.zeros((50, 90))},
            "t1_classes.png: missing; --extra-targets needs a class map for every training tile",
        ),
        (
            lambda d: {"t0": np.zeros((50, 90)), "t1": np.zeros((40, 90))},
            "t1_classes.png: mask is (40, 90), its image is (50, 90)",
        ),
        (
            lambda d: {"t0": np.zeros((50, 90)), "t1": np.full((50, 90), 7)},
            "t1_classes.png: mask values [7] are not class indices 0..1",
        ),
    ],
)
def test_bad_maps_give_one_line(tmp_path, capsys, make, message):
    root = own_folder(tmp_path / "own")
    maps = write_maps(tmp_path / "maps", make(root))
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "--data",
                str(root),
                "--extra-targets",
                str(maps),
                "--weights",
                "none",
                "--out",
                str(tmp_path / "r"),
            ]
        )
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1 and message in err, err


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--points", "10", "--extra-targets", "maps"],
            "--extra-targets needs a tile folder (--data DIR)",
        ),
        (["--points", "10", "--extra-weight", "0"], "--extra-weight must be > 0, got 0.0"),
    ],
)
def test_bad_extra_flags_give_one_line(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv + ["--weights", "none", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1 and message in err, err


def test_the_forest_maps_every_training_tile_for_train_py(tmp_path):
    root = own_folder(tmp_path / "own")
    baseline.run(dict(data=str(root), predict_train=True, out=str(tmp_path / "forest")))
    data = tiles.load_data(None, 0, str(root))
    maps = tiles.read_targets(tmp_path / "forest" / "train-predictions", data)
    assert len(maps) == 2 and all(m.shape == (50, 90) for m in maps)
    # the two halves
    assert (maps[0][:, 60:] == 1).mean() > 0.9 and (maps[0][:, :30] == 0).mean() > 0.9
    with pytest.raises(ValueError, match="--predict-train needs a tile folder"):
        baseline.run(dict(points_per_class=2, predict_train=True, out=str(tmp_path / "x")))


def test_min_confidence_leaves_the_unsure_pixels_unknown(tmp_path, capsys):
    root = own_folder(tmp_path / "own")
    train(dict(FAST, data=str(root), out=str(tmp_path / "run")))
    model, images = str(tmp_path / "run" / "model.pt"), str(root / "test" / "images")
    read = lambda out: np.asarray(Image.open(tmp_path / out / "a_classes.png"))
    predict.main([model, images, "--out", str(tmp_path / "all")])
    predict.main([model, images, "--out", str(tmp_path / "sure"), "--min-confidence", "0.999"])
    everything, sure = read("all"), read("sure")
    kept = sure != 255
    assert np.array_equal(sure[kept], everything[kept]) and not kept.all()
    # unknown is black
    assert (np.asarray(Image.open(tmp_path / "sure" / "a_preview.png"))[~kept] == 0).all()
    with pytest.raises(SystemExit) as exit_info:
        predict.main([model, images, "--out", str(tmp_path / "x"), "--min-confidence", "1.5"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--min-confidence must be between 0 and 1, got 1.5" in err


def test_each_step_follows_its_own_batchs_gradient():
    # the optimizer forgets the last step's gradient: two steps of SGD, done by hand
    torch.manual_seed(0)
    model, reference = torch.nn.Conv2d(3, 2, 1), torch.nn.Conv2d(3, 2, 1)
    reference.load_state_dict(model.state_dict())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(2):
        images, clicks = torch.randn(2, 3, 4, 4), torch.randint(-1, 2, (2, 4, 4))
        train_step(model, optimizer, images, clicks, "fp32")
        reference.zero_grad()
        partial_cross_entropy(reference(images), clicks).backward()
        with torch.no_grad():
            for p in reference.parameters():
                p -= 0.5 * p.grad
    for p, q in zip(model.parameters(), reference.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


def test_the_learning_rate_follows_a_cosine_to_zero_over_the_run():
    model = torch.nn.Conv2d(3, 2, 1)
    optimizer, scheduler = make_optimizer(model, dict(lr=1e-3, weight_decay=1e-4, epochs=5))
    rates = []
    for _ in range(5):
        rates.append(optimizer.param_groups[0]["lr"])
        scheduler.step()
    expected = [1e-3 * (1 + math.cos(math.pi * e / 5)) / 2 for e in range(5)]
    assert rates == pytest.approx(expected) and optimizer.param_groups[0]["lr"] == pytest.approx(0)
    assert optimizer.param_groups[0]["weight_decay"] == 1e-4


def test_a_class_balanced_step_weights_the_clicks_by_class():
    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 4, 1)
    images, clicks = torch.randn(2, 3, 8, 8), torch.randint(-1, 4, (2, 8, 8))
    weights = torch.tensor([0.25, 1.75, 1.0, 1.0])
    with torch.no_grad():
        expected = partial_cross_entropy(model(images), clicks, weights)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    loss = train_step(model, optimizer, images, clicks, "fp32", class_weights=weights)
    assert loss == pytest.approx(expected.item(), rel=1e-6)
    assert loss != pytest.approx(partial_cross_entropy(model(images), clicks).item(), rel=1e-3)


@pytest.mark.slow
def test_a_data_run_by_default_shifts_the_prior_and_zooms_at_test_time(exported, tmp_path):
    metrics = train(
        dict(data=str(exported), points=50, epochs=1, batch_size=2, image_size=64, weights="none")
        | dict(out=str(tmp_path / "run"))
    )
    config = metrics["config"]
    assert (config["augment"], config["tta"], config["tta_zoom_out"]) == ("dihedral", True, 3)
    assert (config["prior_shift"], config["prior_estimate"]) == (1.0, "mean")
    assert len(metrics["prior_shift"]["logit_shift"]) == 5
    assert metrics["prior_shift"]["estimate"] == "mean"
    assert "val_miou_tta" in metrics and "test_without_tta" in metrics
