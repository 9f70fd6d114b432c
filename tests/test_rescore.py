"""scripts/rescore.py: a finished run scored again with the tile also seen shrunk gives what the
same run trained with --tta-zoom-out gives, and says so in its record; scripts/fusion_scan.py's
val scores are those runs' val scores, and scripts/prior_scan.py's unshifted one the run's own; a
shifted run shifted again has its own shift taken out first."""

import json
import runpy
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from scripts.rescore import main
from train import train

pytestmark = pytest.mark.slow  # the whole file: see pyproject.toml's markers

# a small synthetic run, as test_train.py's
TINY = dict(
    train_size=16, val_size=4, test_size=4, image_size=64, epochs=2, batch_size=4, weights="none"
)


def test_a_rescored_run_gives_what_the_run_trained_with_the_flag_gives(
    tmp_path, capsys, monkeypatch
):
    run = dict(TINY, points=100, augment="dihedral", tta=True)
    plain = train(dict(run, out=str(tmp_path / "plain")))
    zoomed = train(dict(run, tta_zoom_out=2, out=str(tmp_path / "zoomed")))
    record = tmp_path / "plain" / "metrics.json"  # a run made before --train-zoom-out existed
    old = json.loads(record.read_text())
    del old["config"]["train_zoom_out"]
    record.write_text(json.dumps(old))
    capsys.readouterr()  # the trainings' own lines
    main([str(tmp_path / "plain"), "--out", str(tmp_path / "rescored"), "--tta-zoom-out", "2"])
    rescored = json.loads((tmp_path / "rescored" / "metrics.json").read_text())
    assert rescored["test"] == zoomed["test"] != plain["test"]
    assert rescored["val_miou_tta"] == zoomed["val_miou_tta"]
    assert rescored["test_without_tta"] == plain["test_without_tta"]  # the same weights
    assert rescored["history"] == plain["history"]
    assert rescored["config"] == dict(zoomed["config"], out=str(tmp_path / "rescored"))
    assert rescored["rescored_from"] == str(tmp_path / "plain")
    assert (tmp_path / "rescored" / "model.pt").is_file()
    said = capsys.readouterr().out
    assert "--tta-zoom-out 2" in said and "not shown (--show-test shows it)" in said
    assert "test mIoU" not in said  # a rescoring shows val unless asked
    # --zoom-on-val: val scored both ways, test seen as val scored higher
    main([str(tmp_path / "plain"), "--out", str(tmp_path / "chosen"), "--tta-zoom-out", "2",
          "--zoom-on-val"])  # fmt: skip
    chosen = json.loads((tmp_path / "chosen" / "metrics.json").read_text())
    both = {1: plain, 2: zoomed}
    by_zoom = {view["zoom_out"]: view for view in chosen["val_by_view"]}
    assert [by_zoom[k]["miou"] for k in (1, 2)] == [both[k]["val_miou_tta"] for k in (1, 2)]
    k = 2 if by_zoom[2]["miou_in_truth"] >= by_zoom[1]["miou_in_truth"] else 1
    assert chosen["tta_zoom_out_chosen"] == k and chosen["test"] == both[k]["test"]
    assert chosen["val_miou_tta"] == both[k]["val_miou_tta"]
    assert f"val chose: 8 orientations{', and the tile shrunk 2x' * (k == 2)}" in (
        capsys.readouterr().out
    )
    # --tile-prior S: val scored with it and without (the plain run's val), test as val chose
    main([str(tmp_path / "plain"), "--out", str(tmp_path / "tiled"), "--tile-prior", "2"])
    tiled = json.loads((tmp_path / "tiled" / "metrics.json").read_text())
    with_it, without = tiled["val_by_view"]
    assert (with_it["tile_prior"], without["tile_prior"]) == (2.0, 0.0)
    assert without["miou"] == plain["val_miou_tta"]
    s = 2.0 if with_it["miou_in_truth"] > without["miou_in_truth"] else 0.0
    assert tiled["tile_prior_chosen"] == s and tiled["config"]["tile_prior"] == 2.0
    assert s or tiled["test"] == plain["test"]  # none chosen: the plain run's test
    pytest.importorskip("sklearn")  # the scan fits the forest, at weight 0 too
    scan = ["fusion_scan", str(tmp_path / "plain"), "--weights", "0", "--zoom", "1", "2"]
    monkeypatch.setattr(sys, "argv", scan + ["--tile-priors", "0", "2"])
    runpy.run_module("scripts.fusion_scan", run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    scanned = [line.split()[9] for line in lines if line.startswith("val zoom")]
    assert scanned == [
        f"{plain['val_miou_tta']:.4f}",
        f"{with_it['miou']:.4f}",
        f"{zoomed['val_miou_tta']:.4f}",
        scanned[3],
    ]
    monkeypatch.setattr(sys, "argv", ["prior_scan", str(tmp_path / "plain")])
    runpy.run_module("scripts.prior_scan", run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[5] for line in lines if line.startswith("val none strength 0.00")] == [
        f"{plain['val_miou_tta']:.4f}"
    ]
    assert sum(line.startswith("val ") for line in lines) == 1 + 3 * 4  # none; 3 estimates x 4 S
    assert not any(line.startswith("test ") for line in lines)  # test only with --show-test


def test_a_run_rescored_with_a_prior_shift_gives_what_the_run_trained_with_it_gives(
    tmp_path, capsys, monkeypatch
):
    run = dict(TINY, points=100, augment="dihedral", tta=True)
    plain = train(dict(run, out=str(tmp_path / "plain")))
    shifted = train(dict(run, prior_shift=0.5, out=str(tmp_path / "shifted")))
    geometric = train(
        dict(run, prior_shift=0.5, prior_estimate="geometric", out=str(tmp_path / "geometric"))
    )
    main([str(tmp_path / "plain"), "--out", str(tmp_path / "rescored"), "--prior-shift", "0.5"])
    rescored = json.loads((tmp_path / "rescored" / "metrics.json").read_text())
    for key in ("test", "val_miou_tta", "test_without_tta", "prior_shift"):
        assert rescored[key] == shifted[key], key
    untimed = lambda history: [{k: v for k, v in e.items() if k != "seconds"} for e in history]
    assert untimed(rescored["history"]) == untimed(shifted["history"])  # the same epochs
    assert rescored["config"] == dict(shifted["config"], out=str(tmp_path / "rescored"))
    # a shifted run shifted again to other shares: its own shift is taken out first, so it gives
    # what the run trained with those shares gives (up to the bias's float rounding)
    main(
        [str(tmp_path / "shifted"), "--out", str(tmp_path / "again"), "--prior-estimate=geometric"]
    )
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert again["prior_shift"]["estimate"] == geometric["prior_shift"]["estimate"] == "geometric"
    for key in ("pixel_shares", "logit_shift"):
        assert again["prior_shift"][key] == pytest.approx(geometric["prior_shift"][key], abs=1e-5)
    assert geometric["prior_shift"]["pixel_shares"] != shifted["prior_shift"]["pixel_shares"]
    assert again["test"]["miou"] == pytest.approx(geometric["test"]["miou"], abs=2e-3)
    # and shifted back to none: the plain run's scores, with no shares left to pick
    main([str(tmp_path / "geometric"), "--out", str(tmp_path / "none"), "--prior-shift", "0"])
    none = json.loads((tmp_path / "none" / "metrics.json").read_text())
    assert (none["config"]["prior_shift"], none["config"]["prior_estimate"]) == (0.0, "em")
    assert "prior_shift" not in none
    assert none["test"]["miou"] == pytest.approx(plain["test"]["miou"], abs=2e-3)
    # and a shifted run is scanned from its unshifted weights: EM's shares are the run's
    capsys.readouterr()
    scan = ["prior_scan", str(tmp_path / "shifted"), "--estimates", "em"]
    monkeypatch.setattr(sys, "argv", scan)
    runpy.run_module("scripts.prior_scan", run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    said = [line.split()[3:] for line in lines if line.startswith("pixel shares (em)")]
    assert [float(v) for v in said[0]] == pytest.approx(
        shifted["prior_shift"]["pixel_shares"], abs=1e-4
    )
    scanned = {
        tuple(line.split()[1:4:2]): float(line.split()[5]) for line in lines if " mIoU " in line
    }
    assert scanned["none", "0.00"] == pytest.approx(plain["val_miou_tta"], abs=2e-3)
    assert scanned["em", "0.50"] == pytest.approx(shifted["val_miou_tta"], abs=2e-3)
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path / "shifted"), "--out", str(tmp_path / "nothing")])
    assert stop.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.endswith(
        "give --tta-zoom-out K, --zoom-on-val, --tile-prior S, --prior-shift S, "
        "--prior-estimate E or --forest-weight W"
    )


def test_the_forest_fused_in_training_rescoring_scanning_and_predict_py_alike(
    tmp_path, capsys, monkeypatch
):
    pytest.importorskip("sklearn")
    import predict

    run = dict(TINY, points=100, augment="dihedral", tta=True)
    plain = train(dict(run, out=str(tmp_path / "plain")))
    fused = train(dict(run, forest_weight=0.5, out=str(tmp_path / "fused")))
    assert fused["history"][0]["val_miou"] == plain["history"][0]["val_miou"]  # the same epochs
    assert fused["test"] != plain["test"] and fused["scoring_seconds"]["forest_fit"] > 0
    assert (tmp_path / "fused" / "forest.npz").is_file()
    assert not (tmp_path / "plain" / "forest.npz").exists()
    # the plain run rescored with the forest: what the run trained with it gives
    main([str(tmp_path / "plain"), "--out", str(tmp_path / "rescored"), "--forest-weight", "0.5"])
    rescored = json.loads((tmp_path / "rescored" / "metrics.json").read_text())
    for key in ("test", "val_miou_tta", "test_without_tta"):
        assert rescored[key] == fused[key], key
    assert (tmp_path / "rescored" / "forest.npz").is_file()
    # the scan: weight 0 is the plain run's val, 0.5 the fused run's; test only when asked
    capsys.readouterr()
    monkeypatch.setattr(
        sys, "argv", ["fusion_scan", str(tmp_path / "plain"), "--weights", "0", "0.5"]
    )
    runpy.run_module("scripts.fusion_scan", run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    scanned = [float(line.split()[9]) for line in lines if line.startswith("val zoom 1 weight")]
    assert scanned == [round(plain["val_miou_tta"], 4), round(fused["val_miou_tta"], 4)]
    assert not any(line.startswith("test ") for line in lines)
    # the forest fed the network's features: the network's one view is the best epoch's val
    scan = ["feature_forest_scan", str(tmp_path / "plain"), "--weights", "0", "1"]
    monkeypatch.setattr(sys, "argv", scan)
    runpy.run_module("scripts.feature_forest_scan", run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    found = {line.split(":")[0]: line.split()[-3] for line in lines if line.startswith("val ")}
    assert len(found) == 8 and not any(line.startswith("test ") for line in lines)
    # a fusion of weight 0 is the network alone, of weight 1 the forest alone
    assert found["val fused 0.00"] == found["val network"]
    assert found["val fused 1.00"] == found["val forest"]
    both = found["val forest on filters + network features"]
    assert found["val network fused 0.00 with the forest on both"] == found["val network"]
    assert found["val network fused 1.00 with the forest on both"] == both
    best = plain["history"][plain["best_epoch"] - 1]["val_miou"]
    assert found["val network"] == f"{best:.4f}"
    # predict.py fits the run's forest again and maps as the run was scored
    tiles = tmp_path / "tiles"
    tiles.mkdir()
    np.save(tiles / "x.npy", np.random.default_rng(0).random((3, 64, 64)).astype(np.float32))
    for name in ("fused", "plain"):
        predict.main(
            [str(tmp_path / name / "model.pt"), str(tiles), "--out", str(tmp_path / f"p-{name}")]
        )
    said = capsys.readouterr().out
    assert said.count("the pixel forest fused in (weight 0.5") == 1
    maps = [np.array(Image.open(tmp_path / f"p-{n}" / "x_classes.png")) for n in ("fused", "plain")]
    from lib.checkpoint import load_checkpoint
    from lib.evaluation import predict_tile
    from lib.forest import Fusion

    model = load_checkpoint(tmp_path / "fused" / "model.pt")[0].eval()
    model.to(memory_format=torch.channels_last)  # as predict.py runs it
    image = np.load(tiles / "x.npy")
    precision = predict.pick_precision("auto", torch.device("cpu"))[0]  # predict.py's
    logits = predict_tile(model, image, 64, precision=precision)
    fusion = Fusion.beside(tmp_path / "fused" / "model.pt")
    assert np.array_equal(maps[0], fusion(image, logits).argmax(0).numpy())
    assert np.array_equal(maps[1], logits.argmax(0).numpy())


@pytest.mark.parametrize(
    "folder, out, named",
    [
        ("nowhere", "new", "nowhere: no finished train.py run there (metrics.json and model.pt)"),
        ("run", "run", "--out {tmp}/run is the run itself: give a new folder"),
    ],
)
def test_rescoring_what_is_not_a_run_or_into_it_is_one_line(folder, out, named, tmp_path, capsys):
    (tmp_path / "run").mkdir()
    for name in ("metrics.json", "model.pt"):
        (tmp_path / "run" / name).write_text("{}")
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path / folder), "--out", str(tmp_path / out), "--tta-zoom-out", "2"])
    assert stop.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.endswith(named.format(tmp=tmp_path))


@pytest.mark.parametrize("scan", ["prior_scan", "fusion_scan"])
def test_scanning_what_is_not_a_run_is_one_line(scan, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [scan, str(tmp_path / "nowhere")])
    with pytest.raises(SystemExit) as stop:
        runpy.run_module(f"scripts.{scan}", run_name="__main__")
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"{scan}: error: {tmp_path / 'nowhere'}: no finished train.py run there "
        "(metrics.json and model.pt)"
    ]
